package readreceipt_test

import "runtime"

func runtimeGosched() { runtime.Gosched() }
