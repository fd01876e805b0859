package state

import (
	"context"
	"fmt"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

// TestContainerLister: the lister returns what ListContainers returns,
// after puts, changes and deletes, and decodes only what changed.
func TestContainerLister(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	l := NewContainerLister()
	update := func(fn func(tx store.Tx) error) {
		t.Helper()
		if _, err := st.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string) []v1.Container {
		t.Helper()
		var got, want []v1.Container
		err := st.View(ctx, func(tx store.Tx) (err error) {
			if got, err = l.List(tx); err != nil {
				return err
			}
			want, err = ListContainers(tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: lister\n%v\nListContainers\n%v", step, got, want)
		}
		return got
	}
	update(func(tx store.Tx) error {
		for i := range 3 {
			c := &v1.Container{ID: fmt.Sprint(i), Name: fmt.Sprint("c", i), Labels: map[string]string{"app": "web"}}
			if err := PutContainer(tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	first := check("three")
	update(func(tx store.Tx) error {
		c := first[1]
		c.Labels = map[string]string{"app": "db"}
		return PutContainer(tx, &c)
	})
	second := check("one relabelled")
	if fmt.Sprintf("%p", second[0].Labels) != fmt.Sprintf("%p", first[0].Labels) {
		t.Error("an unchanged container was decoded again")
	}
	if fmt.Sprintf("%p", second[1].Labels) == fmt.Sprintf("%p", first[1].Labels) {
		t.Error("a changed container was not decoded again")
	}
	update(func(tx store.Tx) error { return tx.Delete(ContainerKey("c0")) })
	if got := check("one deleted"); len(got) != 2 {
		t.Errorf("after a delete: %d containers", len(got))
	}
}
