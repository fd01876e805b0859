package memstore_test

import (
	"testing"

	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
	"github.com/knit-net/knit/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memstore.New() })
}
