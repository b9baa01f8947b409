// Package audit reads everything a lab's S3 holds, as the root account
// sees it, so that tests can show the agent changed nothing but its own
// probe objects, and removed those.
package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pathagent/pathagent/internal/lab"
)

// ProbePrefix is where the agent's probe objects live by default.
const ProbePrefix = "pathagent-probe/"

// Contents is every object of every bucket of a lab, by "bucket/key".
type Contents map[string][]byte

// Snapshot reads every object of every scenario bucket, content and all,
// as the S3 servers' root account (which no bucket policy stops), straight
// from each versitygw rather than through the fronts.
func Snapshot(ctx context.Context, l *lab.Lab) (Contents, error) {
	out := Contents{}
	root := l.S3.Root()
	for _, b := range l.Scenario.Buckets {
		c := s3.New(s3.Options{
			BaseEndpoint: aws.String(l.S3.DirectURL(b.Region)),
			Region:       b.Region,
			UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(
				root.AccessKeyID, root.SecretAccessKey, ""),
			HTTPClient: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
		})
		pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(b.Name)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", b.Name, err)
			}
			for _, o := range page.Contents {
				key := aws.ToString(o.Key)
				obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Name), Key: o.Key})
				if err != nil {
					return nil, fmt.Errorf("get %s/%s: %w", b.Name, key, err)
				}
				data, err := io.ReadAll(obj.Body)
				obj.Body.Close()
				if err != nil {
					return nil, fmt.Errorf("read %s/%s: %w", b.Name, key, err)
				}
				out[b.Name+"/"+key] = data
			}
		}
	}
	return out, nil
}

// ProbeObjects returns the probe objects in c, sorted.
func (c Contents) ProbeObjects() []string {
	var out []string
	for k := range c {
		if _, key, _ := strings.Cut(k, "/"); strings.HasPrefix(key, ProbePrefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// UserChanges compares the objects outside the probe prefix in before and
// after and says what differs: gone, added, or changed content.
func UserChanges(before, after Contents) []string {
	var out []string
	for k, v := range before {
		if isProbe(k) {
			continue
		}
		w, ok := after[k]
		switch {
		case !ok:
			out = append(out, k+": gone")
		case !bytes.Equal(v, w):
			out = append(out, fmt.Sprintf("%s: content changed (%d bytes, was %d)", k, len(w), len(v)))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !isProbe(k) {
			out = append(out, k+": added")
		}
	}
	sort.Strings(out)
	return out
}

func isProbe(k string) bool {
	_, key, _ := strings.Cut(k, "/")
	return strings.HasPrefix(key, ProbePrefix)
}

// Age makes an object look older to S3 by moving back the modification
// time of the file versitygw keeps it in; versitygw reports that time as
// the object's LastModified. It stands in for waiting that long.
func Age(l *lab.Lab, bucketKey string, by time.Duration) error {
	bucket, key, _ := strings.Cut(bucketKey, "/")
	region := ""
	for _, b := range l.Scenario.Buckets {
		if b.Name == bucket {
			region = b.Region
		}
	}
	path := filepath.Join(l.Dir, "s3-"+region, "data", bucket, filepath.FromSlash(key))
	t := time.Now().Add(-by)
	if err := os.Chtimes(path, t, t); err != nil {
		return fmt.Errorf("age %s: %w", bucketKey, err)
	}
	return nil
}
