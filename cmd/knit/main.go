// Command knit is the command line of knit: networks and containers on one
// host, driven through knitd's API.
package main

import (
	"os"

	"github.com/knit-net/knit/internal/cli"
)

func main() { os.Exit(cli.Main()) }
