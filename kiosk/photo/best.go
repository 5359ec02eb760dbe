package photo

// Best picks among attempts, given oldest first, by the rules of DOMAIN.md
// §1: most mandatory criteria met, then most optional, then the newest.
// It returns the index of the best attempt and the indices of every
// attempt as good as it (same counts), newest first, the best among them;
// the citizen may choose among those. With no attempts best is -1.
func Best(attempts []Assessment) (best int, equal []int) {
	best = -1
	for i, a := range attempts {
		if best < 0 || better(a, attempts[best]) || same(a, attempts[best]) {
			best = i // later wins a tie: newer
		}
	}
	if best < 0 {
		return -1, nil
	}
	for i := len(attempts) - 1; i >= 0; i-- {
		if same(attempts[i], attempts[best]) {
			equal = append(equal, i)
		}
	}
	return best, equal
}

func better(a, b Assessment) bool {
	if a.Mandatory != b.Mandatory {
		return a.Mandatory > b.Mandatory
	}
	return a.Optional > b.Optional
}

func same(a, b Assessment) bool {
	return a.Mandatory == b.Mandatory && a.Optional == b.Optional
}
