package compare

import "sync"

// subRegistry keeps the in-process event subscribers of the systems that
// deliver events themselves (the map and pebblekv), by group.
type subRegistry struct {
	mu   sync.Mutex
	next int
	subs map[string]map[int]func(Event)
}

// add registers fn for the events of group gid and returns its
// unsubscribe function.
func (r *subRegistry) add(gid string, fn func(Event)) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs == nil {
		r.subs = map[string]map[int]func(Event){}
	}
	if r.subs[gid] == nil {
		r.subs[gid] = map[int]func(Event){}
	}
	id := r.next
	r.next++
	r.subs[gid][id] = fn
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.subs[gid], id)
	}
}

// list returns the subscribers of group gid, to be called without the lock.
func (r *subRegistry) list(gid string) []func(Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fns := make([]func(Event), 0, len(r.subs[gid]))
	for _, fn := range r.subs[gid] {
		fns = append(fns, fn)
	}
	return fns
}
