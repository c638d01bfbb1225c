package readreceipt

// SetCollapseEvery lets tests collapse hot messages after n receipts; it
// returns a function that restores the default.
func SetCollapseEvery(n int) (restore func()) {
	old := collapseEvery
	collapseEvery = n
	return func() { collapseEvery = old }
}
