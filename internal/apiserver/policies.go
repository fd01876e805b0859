package apiserver

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// PolicyView is the policy controller as the API sees it: verdicts and
// drops come from the state the kernel enforces.
type PolicyView interface {
	Trace(ctx context.Context, q v1.PolicyTrace) (v1.PolicyVerdict, error)
	Drops(limit int) v1.PolicyDrops
}

// applyPolicy writes p unless the stored version is the same.
func applyPolicy(tx store.Tx, p *v1.NetworkPolicy) (string, error) {
	old, err := state.GetPolicy(tx, p.Metadata.Namespace, p.Metadata.Name)
	if err != nil {
		return "", err
	}
	if old != nil {
		p.Metadata.UID, p.Metadata.CreationTimestamp, p.Metadata.Generation = old.Metadata.UID, old.Metadata.CreationTimestamp, old.Metadata.Generation
		if sameJSON(old, p) {
			return v1.ApplyUnchanged, nil
		}
		p.Metadata.Generation++
		return v1.ApplyConfigured, state.PutPolicy(tx, p)
	}
	p.Metadata.UID = newID()
	p.Metadata.CreationTimestamp = time.Now().UTC().Truncate(time.Second)
	p.Metadata.Generation = 1
	return v1.ApplyCreated, state.PutPolicy(tx, p)
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	ps, err := read(r.Context(), s.st, func(tx store.Tx) ([]v1.NetworkPolicy, error) { return state.ListPolicies(tx, ns) })
	if ps == nil {
		ps = []v1.NetworkPolicy{}
	}
	reply(w, http.StatusOK, ps, err)
}

func notFoundPolicy(ns, name string) error {
	return v1.NotFoundf("networkpolicies.networking.k8s.io %q not found in namespace %q; see knit get networkpolicies -A", name, ns)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	p, err := read(r.Context(), s.st, func(tx store.Tx) (*v1.NetworkPolicy, error) {
		p, err := state.GetPolicy(tx, ns, name)
		if err == nil && p == nil {
			err = notFoundPolicy(ns, name)
		}
		return p, err
	})
	reply(w, http.StatusOK, p, err)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	rev, err := s.st.Update(r.Context(), func(tx store.Tx) error {
		p, err := state.GetPolicy(tx, ns, name)
		if err != nil {
			return err
		}
		if p == nil {
			return notFoundPolicy(ns, name)
		}
		return tx.Delete(state.PolicyKey(ns, name))
	})
	if err == nil {
		err = s.waitApplied(r.Context(), rev)
	}
	reply(w, http.StatusOK, map[string]string{"deleted": ns + "/" + name}, err)
}

// namespaces lists every namespace: those with a record (created or
// labelled) and those that containers, services or policies are in.
func namespaces(tx store.Tx) ([]v1.Namespace, error) {
	recs, err := state.ListNamespaces(tx)
	if err != nil {
		return nil, err
	}
	byName := map[string]v1.Namespace{v1.DefaultNamespace: {Name: v1.DefaultNamespace}}
	for _, n := range recs {
		byName[n.Name] = n
	}
	add := func(ns string) {
		if ns == "" {
			ns = v1.DefaultNamespace
		}
		if _, ok := byName[ns]; !ok {
			byName[ns] = v1.Namespace{Name: ns}
		}
	}
	cs, err := state.ListContainers(tx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		add(c.Namespace)
	}
	svcs, err := state.ListServices(tx, "")
	if err != nil {
		return nil, err
	}
	for _, sv := range svcs {
		add(sv.Metadata.Namespace)
	}
	ps, err := state.ListPolicies(tx, "")
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		add(p.Metadata.Namespace)
	}
	out := make([]v1.Namespace, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		n := byName[name]
		n.Labels = n.EffectiveLabels()
		out = append(out, n)
	}
	return out, nil
}

func (s *Server) listNamespaces(w http.ResponseWriter, r *http.Request) {
	ns, err := read(r.Context(), s.st, namespaces)
	reply(w, http.StatusOK, ns, err)
}

func (s *Server) createNamespace(w http.ResponseWriter, r *http.Request) {
	var req v1.NamespaceUpdate
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		writeErr(w, err)
		return
	}
	if err := v1.ValidateNamespaceName(req.Name); err != nil {
		writeErr(w, err)
		return
	}
	var out *v1.Namespace
	rev, err := s.st.Update(r.Context(), func(tx store.Tx) error {
		if old, err := state.GetNamespace(tx, req.Name); err != nil {
			return err
		} else if old != nil {
			return v1.Conflictf("namespace %q already exists; change its labels with knit namespace label", req.Name)
		}
		n := &v1.Namespace{Name: req.Name, Labels: withoutNameLabel(req.Set), Created: time.Now().UTC().Truncate(time.Second)}
		out = n
		return state.PutNamespace(tx, n)
	})
	if err == nil {
		err = s.waitApplied(r.Context(), rev)
	}
	reply(w, http.StatusCreated, out, err)
}

// withoutNameLabel drops the automatic name label: it is derived.
func withoutNameLabel(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := maps.Clone(m)
	delete(out, v1.NamespaceNameLabel)
	return out
}

func (s *Server) labelNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req v1.NamespaceUpdate
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		writeErr(w, err)
		return
	}
	if _, ok := req.Set[v1.NamespaceNameLabel]; ok || slices.Contains(req.Remove, v1.NamespaceNameLabel) {
		writeErr(w, v1.Invalidf("namespace %q: label %s is always the namespace's name; it cannot be set or removed", name, v1.NamespaceNameLabel))
		return
	}
	var out *v1.Namespace
	rev, err := s.st.Update(r.Context(), func(tx store.Tx) error {
		all, err := namespaces(tx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(n v1.Namespace) bool { return n.Name == name })
		if i < 0 {
			return v1.NotFoundf("namespace %q not found; create it with knit namespace create %s", name, name)
		}
		n, err := state.GetNamespace(tx, name)
		if err != nil {
			return err
		}
		if n == nil {
			n = &v1.Namespace{Name: name, Created: time.Now().UTC().Truncate(time.Second)}
		}
		labels, err := updateLabels(fmt.Sprintf("namespace %q", name), n.Labels, req.Set, req.Remove, req.Overwrite)
		if err != nil {
			return err
		}
		n.Labels = labels
		out = &v1.Namespace{Name: n.Name, Labels: n.EffectiveLabels(), Created: n.Created}
		return state.PutNamespace(tx, n)
	})
	if err == nil {
		err = s.waitApplied(r.Context(), rev)
	}
	reply(w, http.StatusOK, out, err)
}

// updateLabels applies kubectl label's set/remove/overwrite rules.
func updateLabels(owner string, cur, set map[string]string, remove []string, overwrite bool) (map[string]string, error) {
	labels := maps.Clone(cur)
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range set {
		if have, ok := labels[k]; ok && have != v && !overwrite {
			return nil, v1.Conflictf("%s: label %q already has a value (%s), and --overwrite is false; add --overwrite to change it", owner, k, have)
		}
		labels[k] = v
	}
	for _, k := range remove {
		delete(labels, k)
	}
	if len(labels) == 0 {
		return nil, nil
	}
	return labels, nil
}

func (s *Server) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rev, err := s.st.Update(r.Context(), func(tx store.Tx) error {
		n, err := state.GetNamespace(tx, name)
		if err != nil {
			return err
		}
		all, err := namespaces(tx)
		if err != nil {
			return err
		}
		if n == nil && !slices.ContainsFunc(all, func(x v1.Namespace) bool { return x.Name == name }) {
			return v1.NotFoundf("namespace %q not found; see knit namespace ls", name)
		}
		if name == v1.DefaultNamespace {
			return v1.Invalidf("namespace %q cannot be deleted", name)
		}
		var users []string
		cs, err := state.ListContainers(tx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.Namespace == name {
				users = append(users, "container "+c.Name)
			}
		}
		svcs, err := state.ListServices(tx, name)
		if err != nil {
			return err
		}
		for _, sv := range svcs {
			users = append(users, "service "+sv.Metadata.Name)
		}
		ps, err := state.ListPolicies(tx, name)
		if err != nil {
			return err
		}
		for _, p := range ps {
			users = append(users, "networkpolicy "+p.Metadata.Name)
		}
		if len(users) > 0 {
			return v1.Conflictf("namespace %q is in use by %s; remove them first", name, joinMax(users, 5))
		}
		return tx.Delete(state.NamespaceKey(name))
	})
	if err == nil {
		err = s.waitApplied(r.Context(), rev)
	}
	reply(w, http.StatusOK, map[string]string{"deleted": name}, err)
}

func joinMax(ss []string, n int) string {
	if len(ss) <= n {
		return fmt.Sprint(ss)
	}
	return fmt.Sprint(ss[:n]) + " and " + strconv.Itoa(len(ss)-n) + " more"
}

func (s *Server) policyTrace(w http.ResponseWriter, r *http.Request) {
	var q v1.PolicyTrace
	if err := decode(r, &q); err != nil {
		writeErr(w, err)
		return
	}
	if s.opts.Policy == nil {
		writeErr(w, v1.Errorf(v1.CodeInternal, "this knitd enforces no network policy"))
		return
	}
	v, err := s.opts.Policy.Trace(r.Context(), q)
	reply(w, http.StatusOK, v, err)
}

func (s *Server) policyDrops(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeErr(w, v1.Invalidf("limit %q: give a number of drops, e.g. limit=50", l))
			return
		}
		limit = n
	}
	if s.opts.Policy == nil {
		reply(w, http.StatusOK, v1.PolicyDrops{Counts: map[string]uint64{}, Recent: []v1.PolicyDrop{}}, nil)
		return
	}
	reply(w, http.StatusOK, s.opts.Policy.Drops(limit), nil)
}
