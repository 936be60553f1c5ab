// Package util keeps the ignore list the extender appends to.
package util

// IgnoreListEntry is one path kaniko would not snapshot.
type IgnoreListEntry struct {
	Path            string
	PrefixMatchOnly bool
}

var ignoreList []IgnoreListEntry

// AddToDefaultIgnoreList records an entry.
func AddToDefaultIgnoreList(e IgnoreListEntry) {
	ignoreList = append(ignoreList, e)
}
