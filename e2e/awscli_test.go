package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/feedpipe/feedpipe/shared/localcloud"
)

// TestAWSCLIAgainstEmbeddedCloud checks that the AWS CLI works against the
// embedded cloud the way the README shows: s3 mb/cp/ls, a presigned URL and
// SQS create/send/receive. It needs the CLI: FEEDPIPE_AWS_CLI names it, or
// the repo's .venv/awscli (make tools-awscli); make check installs it.
func TestAWSCLIAgainstEmbeddedCloud(t *testing.T) {
	cli := os.Getenv("FEEDPIPE_AWS_CLI")
	if cli == "" {
		cli, _ = filepath.Abs("../.venv/awscli/bin/aws")
	}
	if _, err := os.Stat(cli); err != nil {
		t.Skipf("no AWS CLI at %s (make tools-awscli installs it; make check runs this test)", cli)
	}
	cloud, err := localcloud.Start(context.Background(), localcloud.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "config")
	if err := os.WriteFile(cfg, []byte("[default]\nregion = us-east-1\ns3 =\n    signature_version = s3v4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	aws := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append([]string{"--endpoint-url", cloud.Endpoint()}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cfgDir, "AWS_CONFIG_FILE=" + cfg,
			"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	file := filepath.Join(cfgDir, "hello.txt")
	if err := os.WriteFile(file, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	aws("s3", "mb", "s3://cli-bucket")
	aws("s3", "cp", file, "s3://cli-bucket/dir/hello.txt")
	if out := aws("s3", "ls", "s3://cli-bucket", "--recursive"); !strings.Contains(out, "dir/hello.txt") {
		t.Errorf("s3 ls: %s", out)
	}
	url := strings.TrimSpace(aws("s3", "presign", "s3://cli-bucket/dir/hello.txt", "--expires-in", "60"))
	if !strings.Contains(url, "X-Amz-Signature=") {
		t.Errorf("presign did not give a SigV4 URL: %s", url)
	}
	if out := aws("sqs", "create-queue", "--queue-name", "cli.fifo", "--attributes", "FifoQueue=true,ContentBasedDeduplication=true"); !strings.Contains(out, "/000000000000/cli.fifo") {
		t.Fatalf("create-queue: %s", out)
	}
	q := cloud.Endpoint() + "/000000000000/cli.fifo"
	aws("sqs", "send-message", "--queue-url", q, "--message-body", "hi", "--message-group-id", "g1")
	if out := aws("sqs", "receive-message", "--queue-url", q, "--attribute-names", "All"); !strings.Contains(out, `"Body": "hi"`) || !strings.Contains(out, `"MessageGroupId": "g1"`) {
		t.Errorf("receive-message: %s", out)
	}
}
