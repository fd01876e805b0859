package dataplane

import (
	"net/netip"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/policy"
)

// Table is knit's nftables table with every feature knit has: networks,
// published ports, services and network policy, in the order their rules
// meet in shared base chains.
type Table struct {
	*nft.Table
	Networks *networks.Feature
	Ports    *ports.Feature
	Services *services.Feature
	Policy   *netpol.Feature
}

// NewTable opens knit's table in the namespace of opts (nothing is
// written until Sync). Published ports and node ports refuse each other.
func NewTable(opts nft.Options) (*Table, error) {
	t := &Table{Networks: networks.New(), Policy: netpol.New()}
	t.Ports = ports.New(ports.Options{NodePort: func(proto string, port uint16) (string, bool) {
		return t.Services.NodePort(proto, port)
	}})
	t.Services = services.New(services.Options{HostPort: t.Ports.HostPort})
	var err error
	t.Table, err = nft.New(opts, t.Networks, t.Ports, t.Services, t.Policy)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Config is the whole desired state of the table at once, as tests and
// benchmarks give it; knitd sets each feature as its objects change.
type Config struct {
	Networks []networks.Network
	// Ports are the published ports of every container (one owner).
	Ports         []ports.Port
	Services      []services.ServicePort
	ServiceRanges []netip.Prefix
	// Policy is the compiled network policy; nil is none.
	Policy *policy.Compiled
}

// Apply sets every feature to cfg and syncs. An invalid cfg fails before
// anything is sent to the kernel.
func (t *Table) Apply(cfg Config) error {
	if err := t.Networks.Set(cfg.Networks); err != nil {
		return err
	}
	if err := t.Ports.Set(configOwner, cfg.Ports); err != nil {
		// A node port of the services set before may be a published port
		// now: check the ports against cfg's services instead (they are
		// checked against the ports next).
		if t.Services.Set(nil, cfg.ServiceRanges) != nil || t.Ports.Set(configOwner, cfg.Ports) != nil {
			return err
		}
	}
	if err := t.Services.Set(cfg.Services, cfg.ServiceRanges); err != nil {
		return err
	}
	t.Policy.Set(cfg.Policy)
	return t.Sync()
}

// configOwner owns the published ports of a Config.
const configOwner = "config"
