package nft

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/netns"
)

// socketBuffer is the netlink socket's send and receive buffer size: one
// transaction carries the whole ruleset, and the kernel's acks for every
// message of it must fit too.
const socketBuffer = 16 << 20

// fullResyncInterval bounds how long partial syncs may trust what the
// Table and its features remember: the next sync after it is a full one,
// which also repairs anything changed behind knit's back.
const fullResyncInterval = time.Hour

// Options configure a Table.
type Options struct {
	// NetNSPath is the network namespace file to program, e.g.
	// /run/netns/NAME. Empty means the namespace of the calling thread at New.
	NetNSPath string
	// Logger receives a debug line per sync and an info line for every
	// chain or set a sync removes or recreates; nil discards.
	Logger *slog.Logger
}

// Table owns table inet knit in one network namespace and writes the
// features given to New into it. Its methods are safe for concurrent use;
// they serialise on one netlink socket.
type Table struct {
	features []Feature
	names    []string

	mu     sync.Mutex
	ns     *os.File // keeps the namespace reachable for redials
	conn   *nftables.Conn
	log    *slog.Logger
	closed bool
	// shapes are the features' latest shapes; applied is what the last
	// successful sync wrote (nil forces a full sync), fullAt when the last
	// full one was.
	shapes  []*Shape
	applied *ruleset
	fullAt  time.Time
}

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("nftables table is closed")

// New opens a netlink socket to nftables in the namespace, for a table
// made of features (in the order their rules appear in shared base
// chains, when their HookRules have the same Order). It changes nothing in
// the kernel.
func New(opts Options, features ...Feature) (*Table, error) {
	ns, err := netns.Open(opts.NetNSPath)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Table{features: features, ns: ns, log: log, shapes: make([]*Shape, len(features))}
	for _, f := range features {
		t.names = append(t.names, f.Name())
	}
	if t.conn, err = t.dial(); err != nil {
		ns.Close()
		return nil, err
	}
	return t, nil
}

func (t *Table) dial() (*nftables.Conn, error) {
	c, err := nftables.New(
		nftables.WithNetNSFd(int(t.ns.Fd())),
		nftables.AsLasting(),
		nftables.WithSockOptions(bigBuffers),
	)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket in %s: %w", t.ns.Name(), err)
	}
	return c, nil
}

// bigBuffers raises both socket buffers past the sysctl limits (root has
// CAP_NET_ADMIN), falling back to the ordinary, capped setsockopt.
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
	})
	if err == nil && serr == nil {
		return nil
	}
	if err := c.SetWriteBuffer(socketBuffer); err != nil {
		return fmt.Errorf("netlink socket send buffer: %w", err)
	}
	if err := c.SetReadBuffer(socketBuffer); err != nil {
		return fmt.Errorf("netlink socket receive buffer: %w", err)
	}
	return nil
}

// Sync makes table inet knit what the features want, in one netlink
// transaction.
//
// The first sync, the first after an error, one an hour, one after a
// feature's shape changed and one a feature asks for are full: the table
// is read back and created if missing (never recreated, so its handle and
// unrelated state survive), sets are emptied and refilled, chains flushed
// and their rules added again, and anything in the table that no feature
// renders is removed. Between them, Sync sends only the element changes
// the features hand it; a failed partial sync is followed at once by a
// full one.
//
// Packets see either the old or the new ruleset, never a mix, and
// conntrack entries are untouched. A feature's error fails the sync before
// anything is sent.
func (t *Table) Sync() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.syncLocked(); err != nil {
		return fmt.Errorf("sync nftables table inet %s: %w", TableName, err)
	}
	return nil
}

func (t *Table) syncLocked() error {
	start := time.Now()
	conn, err := t.connLocked()
	if err != nil {
		return err
	}
	wantFull, reshaped, err := t.planLocked()
	if err != nil {
		return err
	}
	if t.applied != nil && start.Sub(t.fullAt) < fullResyncInterval && !wantFull && !reshaped {
		sent, err := t.syncElemsLocked(conn)
		if err == nil {
			t.commitLocked()
			t.log.Debug("synced nftables table elements", "table", "inet "+TableName,
				"changes", sent, "duration", time.Since(start))
			return nil
		}
		t.log.Info("partial nftables sync failed, doing a full one", "table", "inet "+TableName, "error", err)
		t.resetLocked()
		if _, _, err := t.planLocked(); err != nil { // after Abort, shapes come again
			return err
		}
		if conn, err = t.connLocked(); err != nil {
			return err
		}
	}
	rs, err := render(t.names, t.shapes)
	if err != nil {
		t.abortLocked(len(t.features))
		return err
	}
	t.applied = nil
	elems, err := t.syncTableLocked(conn, rs)
	if err != nil {
		t.resetLocked()
		return err
	}
	t.commitLocked()
	t.applied, t.fullAt = rs, start
	t.log.Debug("synced nftables table", "table", "inet "+TableName,
		"elements", elems, "rules", len(rs.rules), "duration", time.Since(start))
	return nil
}

// planLocked asks every feature for its plan and keeps the shapes it
// returns. It reports whether a feature wants a full sync and whether a
// shape changed; a feature's error aborts the features before it.
func (t *Table) planLocked() (wantFull, reshaped bool, err error) {
	for i, f := range t.features {
		shape, full, err := f.Plan()
		if err != nil {
			t.abortLocked(i)
			return false, false, fmt.Errorf("%s: %w", t.names[i], err)
		}
		if shape != nil {
			reshaped = reshaped || t.shapes[i] == nil || !sameShape(t.shapes[i], shape)
			t.shapes[i] = shape
		}
		wantFull = wantFull || full
	}
	return wantFull, reshaped, nil
}

// sameShape compares two shapes of one feature. Features that keep their
// shape return the same slices, which DeepEqual finds equal at once.
func sameShape(a, b *Shape) bool {
	return a == b || reflect.DeepEqual(a, b)
}

// commitLocked tells every feature that its changes are in the table.
func (t *Table) commitLocked() {
	for _, f := range t.features {
		f.Commit()
	}
}

// abortLocked tells the features that planned a sync (the first n) that
// it did not happen, and forgets the applied state.
func (t *Table) abortLocked(n int) {
	for _, f := range t.features[:min(n, len(t.features))] {
		f.Abort()
	}
	t.applied = nil
}

// Delete removes table inet knit and everything in it, in one transaction.
// It is for explicit uninstall only: a stopping daemon leaves the table in
// place so that containers keep working. No table is nil. Other tables are
// never touched.
func (t *Table) Delete() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	conn, err := t.connLocked()
	if err != nil {
		return fmt.Errorf("delete nftables table inet %s: %w", TableName, err)
	}
	t.abortLocked(len(t.features))
	conn.DelTable(knitTable())
	err = conn.Flush()
	if err == nil || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	t.resetLocked()
	return fmt.Errorf("delete nftables table inet %s: %w", TableName, err)
}

// Elements lists the elements of one of the table's sets as the kernel
// holds them now, for features that read what the packet path wrote
// (counters, learned sets). A missing set or table is an error.
func (t *Table) Elements(set string) ([]nftables.SetElement, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conn, err := t.connLocked()
	if err != nil {
		return nil, err
	}
	return getElems(conn, set)
}

// ForceFull makes the next sync a full one, as after an error: it repairs
// whatever changed in the table behind knit's back.
func (t *Table) ForceFull() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = nil
}

// Synced reports whether the last sync succeeded (and there was one).
func (t *Table) Synced() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.applied != nil
}

// NetNS returns a new handle of the table's network namespace, for
// features that open sockets of their own there (NFLOG); the caller
// closes it.
func (t *Table) NetNS() (*os.File, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	fd, err := unix.Dup(int(t.ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("duplicate the handle of network namespace %s: %w", t.ns.Name(), err)
	}
	return os.NewFile(uintptr(fd), t.ns.Name()), nil
}

// Close releases the netlink socket and the namespace. The table stays.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.abortLocked(len(t.features))
	var err error
	if t.conn != nil {
		err = t.conn.CloseLasting()
		t.conn = nil
	}
	return errors.Join(err, t.ns.Close())
}

// connLocked returns the socket, dialling again after a failure or
// ErrClosed after Close.
func (t *Table) connLocked() (*nftables.Conn, error) {
	if t.closed {
		return nil, ErrClosed
	}
	if t.conn == nil {
		c, err := t.dial()
		if err != nil {
			return nil, err
		}
		t.conn = c
	}
	return t.conn, nil
}

// resetLocked drops the connection after a failure: the library keeps
// queued messages and serialisation errors in the Conn, and a half-queued
// transaction must never be sent by the next call. The features are told
// their changes did not happen, and the next sync is a full one.
func (t *Table) resetLocked() {
	t.abortLocked(len(t.features))
	if t.conn != nil {
		_ = t.conn.CloseLasting()
		t.conn = nil
	}
}

// getElems lists a set's elements.
func getElems(c *nftables.Conn, set string) ([]nftables.SetElement, error) {
	elems, err := c.GetSetElements(&nftables.Set{Table: knitTable(), Name: set})
	if err != nil {
		return nil, fmt.Errorf("list elements of set %s: %w", set, err)
	}
	return elems, nil
}
