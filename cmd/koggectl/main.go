// Command koggectl is the command-line tool for Kogge fleet admins and
// developers.
//
//	koggectl decode [--topic T] FILE|-   print a wire payload as JSON
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one koggectl command and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "decode":
		err = decodeCmd(args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "koggectl: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "koggectl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: koggectl COMMAND [ARGS]

commands:
  decode [--topic T] FILE|-   print a Kogge wire payload as indented JSON;
                              with --topic, also check that the topic carries it
`)
}
