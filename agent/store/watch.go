package store

// watcher is one subscriber of Watch.
type watcher struct {
	ch chan Entry
}

// Watch returns a channel that receives every state change of every record
// (including Saved) after it is committed, and a function that ends the
// subscription and closes the channel. Close closes it too.
//
// The writer never waits for a watcher: the channel buffers 256 entries,
// and when it is full the oldest entry is dropped to make room for the
// newest (drop-oldest). A watcher that falls behind therefore sees the
// latest states but may miss intermediate ones; it can catch up with List.
func (s *Store) Watch() (<-chan Entry, func()) {
	w := &watcher{ch: make(chan Entry, watchBuffer)}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.closing.Load() {
		close(w.ch)
		return w.ch, func() {}
	}
	s.watchers[w] = struct{}{}
	return w.ch, func() {
		s.watchMu.Lock()
		defer s.watchMu.Unlock()
		if _, ok := s.watchers[w]; ok {
			delete(s.watchers, w)
			close(w.ch)
		}
	}
}

// publish sends committed changes to the watchers without blocking.
func (s *Store) publish(events []Entry) {
	if len(events) == 0 {
		return
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for w := range s.watchers {
		for _, e := range events {
			for {
				select {
				case w.ch <- e:
				default:
					// Full: drop the oldest and try again. Only the writer
					// sends, so the retry succeeds unless the watcher
					// took one in between, which also makes room.
					select {
					case <-w.ch:
					default:
					}
					continue
				}
				break
			}
		}
	}
}
