package nixstore

// LookupOnly makes every closure read look paths up, as a small one does,
// until the returned func is called.
func LookupOnly() (restore func()) {
	old := scanMin
	scanMin = int(^uint(0) >> 1)
	return func() { scanMin = old }
}

// ScanOnly makes every closure read scan the store's tables, as a large
// one does, until the returned func is called.
func ScanOnly() (restore func()) {
	oldMin, oldShare := scanMin, scanShare
	scanMin, scanShare = 0, 1<<40
	return func() { scanMin, scanShare = oldMin, oldShare }
}
