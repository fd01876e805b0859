//go:build race

package e2e

// raceEnabled: the test binary runs with the race detector, so the daemon and
// CLI it builds do too.
const raceEnabled = true
