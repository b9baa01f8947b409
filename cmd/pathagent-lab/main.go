// Command pathagent-lab runs a stand-in VPC on loopback from a scenario file,
// so pathagent can be tried and tested without an AWS account.
//
//	pathagent-lab run -scenario FILE -- COMMAND [ARGS...]
//	    start the lab, run COMMAND in its environment, stop the lab and
//	    exit with COMMAND's status
//	pathagent-lab up -scenario FILE
//	    start the lab, print its environment as shell exports, and run
//	    until interrupted
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// childStopWait is how long a command is given to stop after SIGTERM: a
// probe in flight finishes within its 10 s timeout, then cleans up.
const childStopWait = 30 * time.Second

const usage = `usage:
  pathagent-lab run -scenario FILE -- COMMAND [ARGS...]
  pathagent-lab up  -scenario FILE
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "run" && args[0] != "up") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("pathagent-lab "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("scenario", "lab/scenarios/gateway-endpoint.yaml", "scenario `file`")
	keep := fs.Bool("keep", false, "keep the lab's directory (logs, data) after it stops")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if args[0] == "run" && fs.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}

	s, err := scenario.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "pathagent-lab: %v\n", err)
		return 2
	}

	dir, err := os.MkdirTemp("", "pathagent-lab-")
	if err != nil {
		fmt.Fprintf(stderr, "pathagent-lab: %v\n", err)
		return 2
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := lab.Start(ctx, dir, s)
	if err != nil {
		fmt.Fprintf(stderr, "pathagent-lab: %v\n(logs in %s)\n", err, dir)
		return 2
	}
	defer l.Stop()
	fmt.Fprintf(stderr, "pathagent-lab: scenario %s: %s\n", s.Name, s.Description)

	if args[0] == "up" {
		for _, kv := range l.Env() {
			fmt.Fprintf(stdout, "export %s\n", kv)
		}
		fmt.Fprintf(stderr, "pathagent-lab: running in %s; Ctrl-C stops it\n", dir)
		<-ctx.Done()
		return 0
	}

	cmd := exec.CommandContext(ctx, fs.Arg(0), fs.Args()[1:]...)
	cmd.Env = append(lab.CleanEnv(os.Environ()), l.Env()...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	// On Ctrl-C the command gets SIGTERM, as from systemd, and time to
	// finish its probes and clean up before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = childStopWait
	err = cmd.Run()

	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintf(stderr, "pathagent-lab: %v\n", err)
		return 2
	}
	return 0
}
