// Package faults holds switches that make the engine break its own
// promises on purpose, so that the tests which must catch such a break can
// show that they do. Nothing outside tests sets them; each is read where
// the promise is kept, at the cost of one atomic load.
package faults

import "sync/atomic"

// EarlyReceiptAck makes the embedded engine acknowledge receipt calls
// before their receipts are durable: the receipt log's record is not
// written at all, so the receipts reach the store only when the log is
// folded (unsynced, in the background). A crash test that cannot tell
// the difference proves nothing about the receipt path.
var EarlyReceiptAck atomic.Bool
