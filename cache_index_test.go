package readreceipt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEntryIndex: random adds and removes (by entry, and by slot as the
// CLOCK hand does) leave exactly the added entries findable, through
// growth and the moves back after a removal.
func TestEntryIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 50 {
		var x entryIndex
		want := map[string]*msgEntry{}
		keys := make([]string, 1+rng.IntN(300))
		for i := range keys {
			keys[i] = fmt.Sprintf("m%d-%d", round, i)
		}
		for range 2000 {
			k := keys[rng.IntN(len(keys))]
			if e := want[k]; e != nil {
				if rng.IntN(2) == 0 {
					x.remove(e)
				} else {
					i := slices.Index(x.slots, e)
					require.GreaterOrEqual(t, i, 0, "an added entry has a slot")
					x.removeAt(i)
				}
				delete(want, k)
			} else {
				e := &msgEntry{key: k}
				x.add(e, keyHash([]byte(k)))
				want[k] = e
			}
			require.Equal(t, len(want), x.n)
			require.LessOrEqual(t, 4*x.n, 3*len(x.slots), "at most 3/4 full")
		}
		for _, k := range keys {
			require.Same(t, want[k], x.get([]byte(k), keyHash([]byte(k))), "round %d key %s", round, k)
		}
		seen := 0
		x.each(func(e *msgEntry) {
			require.Same(t, want[e.key], e)
			seen++
		})
		require.Equal(t, len(want), seen)
	}
}
