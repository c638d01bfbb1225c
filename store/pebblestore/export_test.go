package pebblestore

// SetIngestPartMin sets the fewest operations of an ingested table's part
// and returns a func that restores it.
func SetIngestPartMin(n int) (restore func()) {
	old := ingestPartMin
	ingestPartMin = n
	return func() { ingestPartMin = old }
}
