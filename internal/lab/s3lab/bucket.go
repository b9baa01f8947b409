package s3lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// dialTimeout bounds a connection to a loopback server, which either
// answers at once or is not there.
const dialTimeout = 2 * time.Second

// newTransport returns an HTTP transport that ignores proxy variables: the
// lab's servers are on loopback and must be reached directly.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
}

// newClient builds an S3 client for a lab server with static credentials
// and path-style addressing. It is built by hand rather than with the
// SDK's config loader, which reads AWS_CA_BUNDLE and other variables this
// machine exports.
func newClient(baseURL, region string, c Credentials) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(baseURL),
		Region:       region,
		UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(
			c.AccessKeyID, c.SecretAccessKey, ""),
		HTTPClient: &http.Client{Transport: newTransport()},
	})
}

// closeIdle drops a client's pooled connections, so that none outlives the
// server it points at.
func closeIdle(c *s3.Client) {
	if hc, ok := c.Options().HTTPClient.(*http.Client); ok {
		hc.CloseIdleConnections()
	}
}

// seedBucket creates a scenario bucket owned by owner, writes its objects
// as root, then puts its policy, so that a restrictive policy cannot stop
// the lab from filling its own bucket.
func (g *gateway) seedBucket(ctx context.Context, b scenario.Bucket, owner string) error {
	if err := g.createBucket(ctx, b.Name, owner); err != nil {
		return err
	}

	// Sorted keys make the log and any failure reproducible.
	keys := make([]string, 0, len(b.Objects))
	for k := range b.Objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		_, err := g.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(b.Name),
			Key:    aws.String(k),
			Body:   strings.NewReader(b.Objects[k]),
		})
		if err != nil {
			return fmt.Errorf("put object %s/%s: %w", b.Name, k, err)
		}
	}

	policy := b.Policy
	if b.LabPolicy != "" {
		policy = b.LabPolicy
	}
	if policy == "" {
		return nil
	}
	return g.setBucketPolicy(ctx, b.Name, policy, owner)
}

// setBucketPolicy puts the policy as root, with the owner's grant added,
// or deletes it when empty.
func (g *gateway) setBucketPolicy(ctx context.Context, bucket, policy, owner string) error {
	if policy == "" {
		_, err := g.s3.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{
			Bucket: aws.String(bucket),
		})
		if err != nil {
			return fmt.Errorf("delete policy of bucket %s: %w", bucket, err)
		}
		return nil
	}

	full, err := withOwnerGrant(policy, bucket, owner)
	if err != nil {
		return err
	}
	_, err = g.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket),
		Policy: aws.String(full),
	})
	if err != nil {
		return fmt.Errorf("put policy of bucket %s: %w", bucket, err)
	}
	return nil
}

// listObjects pages through the bucket as root.
func (g *gateway) listObjects(ctx context.Context, bucket string) (map[string]int64, error) {
	out := make(map[string]int64)
	pages := s3.NewListObjectsV2Paginator(g.s3, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list objects in bucket %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return out, nil
}

// ownerGrantSid names the statement withOwnerGrant adds.
const ownerGrantSid = "PathagentLabOwnerAccess"

// withOwnerGrant adds to a bucket policy a statement allowing the bucket's
// owner every S3 action on the bucket and its objects.
//
// On AWS the agent's access comes from its role's identity policy, and a
// bucket policy only adds denials on top. versitygw's internal IAM has no
// identity policies, and once a bucket has a policy it ignores the owner's
// ACL: a policy with only a Deny would deny the owner everything. The added
// Allow stands in for the identity policy; a Deny still wins over it, as
// on AWS. The lab therefore cannot model an agent whose own IAM policy is
// too narrow: that needs identity policies, which versitygw only offers
// through its separate IAM service.
func withOwnerGrant(policy, bucket, owner string) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "", fmt.Errorf("parse policy of bucket %s: %w", bucket, err)
	}

	// A policy may hold one statement as an object or several in a list.
	var stmts []any
	switch s := doc["Statement"].(type) {
	case nil:
	case []any:
		stmts = s
	case map[string]any:
		stmts = []any{s}
	default:
		return "", fmt.Errorf("parse policy of bucket %s: Statement is a %T", bucket, s)
	}

	stmts = append(stmts, map[string]any{
		"Sid":       ownerGrantSid,
		"Effect":    "Allow",
		"Principal": map[string]any{"AWS": owner},
		"Action":    "s3:*",
		"Resource": []string{
			"arn:aws:s3:::" + bucket,
			"arn:aws:s3:::" + bucket + "/*",
		},
	})
	doc["Statement"] = stmts

	out, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode policy of bucket %s: %w", bucket, err)
	}
	return string(out), nil
}
