package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pathagent/pathagent/internal/lab/imdsmock"
)

// healthPath cannot be a bucket name (buckets have no underscore).
const healthPath = "/_health"

// S3 is versitygw running in the service namespace over TLS on S3IP:443,
// answering virtual-hosted names under S3Name as S3 does. Its internal IAM
// holds the agent's user, so bucket policies apply to the agent; the root
// account, which bypasses them, is the lab's own.
type S3 struct {
	// AccessLog is versitygw's access log.
	AccessLog string

	proc    *Proc
	bin     string
	svc     *NS
	ca      *CA
	rootKey string
	rootSec string
	client  *s3.Client // signed as root, from inside the service namespace
}

func startS3(ctx context.Context, svc *NS, ca *CA, dir, agentKey, agentSecret string) (*S3, error) {
	bin, err := imdsmock.FindBinary("versitygw")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "s3")
	dataDir, iamDir := filepath.Join(dir, "data"), filepath.Join(dir, "iam")
	for _, d := range []string{dataDir, iamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create versitygw dir: %w", err)
		}
	}
	certPath, keyPath, _, err := ca.Issue(dir, "s3", []string{S3Name, "*." + S3Name},
		[]netip.Addr{netip.MustParseAddr(S3IP)})
	if err != nil {
		return nil, err
	}

	s := &S3{AccessLog: filepath.Join(dir, "access.log"), bin: bin, svc: svc, ca: ca}
	if s.rootKey, s.rootSec, err = newRootKey(); err != nil {
		return nil, err
	}

	cmd := svc.Command(bin,
		"--port", net.JoinHostPort(S3IP, strconv.Itoa(httpsPort)),
		"--cert", certPath,
		"--key", keyPath,
		// BUCKET.s3.REGION.amazonaws.com, the SDK's default addressing.
		"--virtual-domain", S3Name,
		"--region", Region,
		"--iam-dir", iamDir,
		"--health", healthPath,
		"--access-log", s.AccessLog,
		"posix", dataDir,
	)
	// The root secret goes in the environment, not the process list,
	// and none of this machine's VGW_* variables come along.
	cmd.Env = []string{
		"ROOT_ACCESS_KEY=" + s.rootKey,
		"ROOT_SECRET_KEY=" + s.rootSec,
	}
	cmd.Dir = dir
	s.proc, err = StartProc("versitygw", cmd, filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}

	to := net.JoinHostPort(S3IP, strconv.Itoa(httpsPort))
	health := svc.HTTPClient(ca.Pool(), to)
	err = waitReady(ctx, s.proc, func(ctx context.Context) error {
		_, err := call(ctx, health, http.MethodGet, "https://"+S3Name+healthPath, "", "")
		return err
	})
	if err != nil {
		return s, err
	}

	s.client = s3.New(s3.Options{
		BaseEndpoint: aws.String("https://" + S3Name),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.rootKey, s.rootSec, ""),
		HTTPClient:   svc.HTTPClient(ca.Pool(), to),
	})

	// The plain user role: bucket policies apply to it.
	_, err = s.admin(ctx, "create-user", "--access", agentKey, "--secret", agentSecret, "--role", "user")
	return s, err
}

// newRootKey makes a root key pair unique to one lab.
func newRootKey() (key, secret string, _ error) {
	k, sec := make([]byte, 8), make([]byte, 20)
	if _, err := rand.Read(k); err != nil {
		return "", "", fmt.Errorf("generate root key: %w", err)
	}
	if _, err := rand.Read(sec); err != nil {
		return "", "", fmt.Errorf("generate root key: %w", err)
	}
	return "LABROOT" + strings.ToUpper(hex.EncodeToString(k)), hex.EncodeToString(sec), nil
}

// admin runs one `versitygw admin` command in the service namespace,
// trusting the lab CA the way the agent does, through SSL_CERT_FILE.
func (s *S3) admin(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"admin", "--region", Region, "--endpoint-url", "https://" + S3IP}, args...)
	cmd := s.svc.CommandContext(ctx, s.bin, full...)
	cmd.Env = []string{
		"ADMIN_ACCESS_KEY=" + s.rootKey,
		"ADMIN_SECRET_KEY=" + s.rootSec,
		"SSL_CERT_FILE=" + s.ca.CertPath,
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("versitygw admin %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CreateBucket makes a bucket owned by owner, so that the bucket policy,
// not ownership, decides what the owner may do once it has one.
func (s *S3) CreateBucket(ctx context.Context, bucket, owner string) error {
	if _, err := s.admin(ctx, "create-bucket", "--owner", owner, "--bucket", bucket); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// SetBucketPolicy puts a bucket policy as root.
func (s *S3) SetBucketPolicy(ctx context.Context, bucket, policy string) error {
	_, err := s.client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket),
		Policy: aws.String(policy),
	})
	if err != nil {
		return fmt.Errorf("put policy of bucket %s: %w", bucket, err)
	}
	return nil
}

// ListObjects returns the size of every object in the bucket by key, as
// root sees it.
func (s *S3) ListObjects(ctx context.Context, bucket string) (map[string]int64, error) {
	out := map[string]int64{}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
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

func (s *S3) stop() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Stop()
}
