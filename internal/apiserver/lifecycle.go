package apiserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// DefaultStopGrace is how long a stopped process has between SIGTERM and
// SIGKILL, as in docker stop.
const DefaultStopGrace = 10 * time.Second

func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	grace := DefaultStopGrace
	if t := r.URL.Query().Get("t"); t != "" {
		secs, err := strconv.Atoi(t)
		if err != nil || secs < 0 {
			writeErr(w, v1.Invalidf("container %q: stop timeout %q is not a number of seconds; use -t 0 or more", name, t))
			return
		}
		grace = time.Duration(secs) * time.Second
	}
	ctx, cancel := s.waitCtx(r, grace)
	defer cancel()
	rev, err := s.st.Update(ctx, func(tx store.Tx) error {
		c, err := state.GetContainer(tx, name)
		if err != nil {
			return err
		}
		if c == nil {
			return notFoundContainer(name)
		}
		if c.Status.State == v1.StateExited || c.Stopped {
			return nil
		}
		c.Stopped, c.StopGrace = true, grace
		c.Generation++
		return state.PutContainer(tx, c)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	var out *v1.Container
	err = s.waitKey(ctx, state.ContainerKey(name), rev, func(v []byte) (bool, error) {
		if v == nil {
			return true, notFoundContainer(name)
		}
		c, err := state.DecodeContainer(v)
		if err != nil {
			return true, err
		}
		out = c
		return c.Status.State == v1.StateExited, nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request) {
	force := r.URL.Query().Get("force") == "true"
	ctx, cancel := s.waitCtx(r, 0)
	defer cancel()
	if err := s.removeContainer(ctx, r.PathValue("name"), force); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeContainer marks the container for teardown and waits until the
// reconciler has killed it, removed its kernel objects, released its
// addresses and deleted the record.
func (s *Server) removeContainer(ctx context.Context, name string, force bool) error {
	rev, err := s.st.Update(ctx, func(tx store.Tx) error {
		c, err := state.GetContainer(tx, name)
		if err != nil {
			return err
		}
		if c == nil {
			return notFoundContainer(name)
		}
		if c.Status.State == v1.StateRunning && !force {
			return v1.Conflictf("container %q is running; stop it first (knit stop %s) or use knit rm -f", name, name)
		}
		if c.Deleting {
			return nil
		}
		c.Deleting = true
		c.Generation++
		return state.PutContainer(tx, c)
	})
	if err != nil {
		return err
	}
	return s.waitKey(ctx, state.ContainerKey(name), rev, func(v []byte) (bool, error) { return v == nil, nil })
}

// logs sends the container's output; with follow=true it keeps sending until
// the container has exited and everything is out, or the client goes away.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	c, err := s.container(r.Context(), name)
	if err != nil {
		writeErr(w, err)
		return
	}
	f, err := os.Open(s.opts.LogPath(c.ID))
	if errors.Is(err, os.ErrNotExist) {
		w.WriteHeader(http.StatusOK)
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	follow := r.URL.Query().Get("follow") == "true"
	flusher, _ := w.(http.Flusher)
	for {
		if _, err := io.Copy(w, f); err != nil {
			return
		}
		if !follow {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		cur, err := s.container(r.Context(), name)
		if err != nil || cur.ID != c.ID || cur.Status.State == v1.StateExited {
			_, _ = io.Copy(w, f) // what was written before the exit
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
