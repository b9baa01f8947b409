package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pathagent/pathagent/internal/lab"
)

// oneShot is one way of doing a diagnosis's S3 work by hand, as a sequence
// of commands.
type oneShot struct {
	name  string
	steps func(run int) [][]string

	env []string

	// check looks at the output of the sequence's steps, by index.
	check func(run int, out [][]byte) error
}

// onceResult is the median cost of each tool's sequence.
type onceResult struct {
	name  string
	steps int
	cost  usage
	wall  spread
}

// benchOnce runs `pathagent once` and the same job by hand with the AWS CLI
// and rclone against one lab, interleaved, each runs times after a warm-up
// round, and returns the median wall time, CPU time and peak RSS of each.
func benchOnce(ctx context.Context, o *options, l *lab.Lab, dir string) ([]onceResult, error) {
	env := append(lab.CleanEnv(os.Environ()), l.Env()...)
	bucket := l.Scenario.Buckets[0].Name
	front := frontURL(l, 0)

	// Path-style addressing for the AWS CLI; the lab's own AWS_CONFIG_FILE
	// names a file that does not exist.
	awsConfig := filepath.Join(dir, "aws-config")
	err := os.WriteFile(awsConfig, []byte("[default]\ns3 =\n    addressing_style = path\n"), 0o644)
	if err != nil {
		return nil, fmt.Errorf("write aws config: %w", err)
	}
	payload := func(run int) string { return fmt.Sprintf("pathagent bench object %d\n", run) }
	upload := func(run int) string { return filepath.Join(dir, fmt.Sprintf("up-%d", run)) }
	download := func(run int) string { return filepath.Join(dir, fmt.Sprintf("down-%d", run)) }
	key := func(tool string, run int) string {
		return fmt.Sprintf("bench/%s-%d-%d", tool, run, time.Now().UnixNano())
	}

	awsKeys := map[int]string{}
	rcloneKeys := map[int]string{}
	tools := []oneShot{
		{
			name: "pathagent once",
			env:  env,
			steps: func(int) [][]string {
				return [][]string{{o.pathagent, "once"}}
			},
			check: func(_ int, out [][]byte) error {
				if !bytes.Contains(out[0], []byte("status: ok")) {
					return fmt.Errorf("pathagent once: status not ok:\n%s", out[0])
				}
				return nil
			},
		},
		{
			name: "aws CLI",
			env: append(slicesClone(env),
				"AWS_CONFIG_FILE="+awsConfig,
				"AWS_DEFAULT_REGION="+l.Scenario.Region,
				"AWS_PAGER="),
			steps: func(run int) [][]string {
				k := key("aws", run)
				awsKeys[run] = k
				ep := []string{o.aws, "--endpoint-url", front}
				return [][]string{
					append(slicesClone(ep), "s3", "ls"),
					append(slicesClone(ep), "s3", "ls", "s3://"+bucket),
					append(slicesClone(ep), "s3", "cp", "--only-show-errors", upload(run), "s3://"+bucket+"/"+k),
					append(slicesClone(ep), "s3", "cp", "--only-show-errors", "s3://"+bucket+"/"+k, download(run)),
					append(slicesClone(ep), "s3", "rm", "--only-show-errors", "s3://"+bucket+"/"+k),
				}
			},
			check: func(run int, _ [][]byte) error {
				got, err := os.ReadFile(download(run))
				if err != nil || string(got) != payload(run) {
					return fmt.Errorf("aws CLI: object read back %q (%v), want %q", got, err, payload(run))
				}
				return nil
			},
		},
		{
			name: "rclone",
			// The SDK inside rclone cannot extend its own transport with
			// AWS_CA_BUNDLE and refuses to start; plain HTTP needs none.
			env: append(withoutVar(env, "AWS_CA_BUNDLE"),
				"RCLONE_CONFIG="+os.DevNull,
				"RCLONE_CONFIG_LAB_TYPE=s3",
				"RCLONE_CONFIG_LAB_PROVIDER=Other",
				"RCLONE_CONFIG_LAB_ACCESS_KEY_ID="+lab.AgentAccessKeyID,
				"RCLONE_CONFIG_LAB_SECRET_ACCESS_KEY="+lab.AgentSecretAccessKey,
				"RCLONE_CONFIG_LAB_ENDPOINT="+front,
				"RCLONE_CONFIG_LAB_REGION="+l.Scenario.Region,
				"RCLONE_CONFIG_LAB_FORCE_PATH_STYLE=true",
				// The agent may not create buckets; rclone would try.
				"RCLONE_CONFIG_LAB_NO_CHECK_BUCKET=true"),
			steps: func(run int) [][]string {
				k := key("rclone", run)
				rcloneKeys[run] = k
				return [][]string{
					{o.rclone, "lsd", "lab:"},
					{o.rclone, "lsf", "lab:" + bucket},
					{o.rclone, "copyto", upload(run), "lab:" + bucket + "/" + k},
					{o.rclone, "cat", "lab:" + bucket + "/" + k},
					{o.rclone, "deletefile", "lab:" + bucket + "/" + k},
				}
			},
			check: func(run int, out [][]byte) error {
				if string(out[3]) != payload(run) {
					return fmt.Errorf("rclone: object read back %q, want %q", out[3], payload(run))
				}
				return nil
			},
		},
	}

	costs := make([][]usage, len(tools))
	for run := 0; run <= o.runs; run++ {
		if err := os.WriteFile(upload(run), []byte(payload(run)), 0o644); err != nil {
			return nil, fmt.Errorf("write upload: %w", err)
		}
		// Rotating the order keeps any one tool from always running
		// right after another's burst of work.
		for j := range tools {
			i := (j + run) % len(tools)
			t := tools[i]
			var total usage
			var outs [][]byte
			for _, argv := range t.steps(run) {
				u, out, err := runMeasured(ctx, t.env, argv...)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", t.name, err)
				}
				total = total.add(u)
				outs = append(outs, out)
			}
			if err := t.check(run, outs); err != nil {
				return nil, err
			}
			// Run 0 warms the page cache and the lab; it is not counted.
			if run > 0 {
				costs[i] = append(costs[i], total)
			}
		}
		fmt.Fprintf(os.Stderr, "bench: once: round %d of %d done\n", run, o.runs)
	}

	var out []onceResult
	for i, t := range tools {
		var wall, cpu []time.Duration
		var rss []int64
		for _, c := range costs[i] {
			wall, cpu, rss = append(wall, c.wall), append(cpu, c.cpu), append(rss, c.maxRSS)
		}
		out = append(out, onceResult{
			name:  t.name,
			steps: len(t.steps(0)),
			cost:  usage{wall: median(wall), cpu: median(cpu), maxRSS: median(rss)},
			wall:  spread{min: slices.Min(wall), max: slices.Max(wall)},
		})
	}
	return out, nil
}

// frontURL is the S3 front with the given index, by address: what a tool
// pointed at S3 directly, without the lab's resolver, connects to.
func frontURL(l *lab.Lab, i int) string {
	var addrs []string
	for _, srv := range l.Scenario.S3 {
		for _, f := range srv.Fronts {
			addrs = append(addrs, f.Address)
		}
	}
	return "http://" + addrs[i] + ":" + strconv.Itoa(l.S3.Port())
}

func withoutVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
