package runnel

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTilesHashSpaceProperty builds random tilings of the hash space by
// random splits (seeded), checks that tilesHashSpace accepts each, and that
// it rejects each after one random damage: a gap, an overlap, a missing
// range, a shifted end.
func TestTilesHashSpaceProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	randomKey := func(rng HashKeyRange) HashKey {
		// A key strictly inside the range, above its start.
		d := rng.EndingHashKey.subKey(rng.StartingHashKey)
		off := HashKey{hi: r.Uint64(), lo: r.Uint64()}
		if d.hi == 0 {
			off = HashKey{lo: r.Uint64N(max(d.lo, 1))}
		} else {
			off.hi %= d.hi
		}
		return rng.StartingHashKey.addKey(off).add(1)
	}
	for range 2000 {
		ranges := []HashKeyRange{{StartingHashKey: HashKey{}, EndingHashKey: MaxHashKey()}}
		for range r.IntN(12) {
			i := r.IntN(len(ranges))
			rng := ranges[i]
			if rng.EndingHashKey.subKey(rng.StartingHashKey).Cmp(HashKey{lo: 2}) < 0 {
				continue
			}
			k := randomKey(rng)
			if k.Cmp(rng.EndingHashKey) > 0 {
				continue
			}
			lo := HashKeyRange{StartingHashKey: rng.StartingHashKey, EndingHashKey: k.sub(1)}
			hi := HashKeyRange{StartingHashKey: k, EndingHashKey: rng.EndingHashKey}
			ranges = slices.Replace(ranges, i, i+1, lo, hi)
		}
		require.True(t, tilesHashSpace(ranges), "a tiling made by splits: %v", ranges)

		bad := slices.Clone(ranges)
		i := r.IntN(len(bad))
		switch r.IntN(4) {
		case 0: // a gap or an overlap at the end of range i
			if r.IntN(2) == 0 {
				bad[i].EndingHashKey = bad[i].EndingHashKey.sub(1)
			} else {
				bad[i].EndingHashKey = bad[i].EndingHashKey.add(1)
			}
		case 1: // a missing range
			bad = slices.Delete(bad, i, i+1)
		case 2: // a shifted start
			bad[i].StartingHashKey = bad[i].StartingHashKey.add(1)
		case 3: // a duplicated range
			bad = slices.Insert(bad, i, bad[i])
		}
		assert.False(t, tilesHashSpace(bad), "damaged tiling %v", bad)
	}
	assert.False(t, tilesHashSpace(nil), "no range tiles nothing")
}
