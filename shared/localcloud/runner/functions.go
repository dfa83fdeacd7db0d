package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// functionProps are the AWS::Serverless::Function properties the runner
// reads; the others listed are accepted because they change nothing locally.
var functionProps = map[string]bool{
	"CodeUri": true, "Handler": true, "Runtime": true, "Architectures": true, "MemorySize": true,
	"Timeout": true, "Environment": true, "Events": true, "FunctionName": true,
	"ReservedConcurrentExecutions": true,
	// accepted, not enforced locally:
	"Policies": true, "EphemeralStorage": true, "Description": true, "Tracing": true,
	"LoggingConfig": true, "Tags": true, "Role": true,
}

// function is one AWS::Serverless::Function of the template.
type function struct {
	logicalID   string
	name        string
	codeURI     string
	buildMethod string
	timeout     time.Duration
	memoryMB    int
	reserved    int
	env         map[string]string
}

// readFunction resolves a function's properties (Globals merged).
func (r *Runner) readFunction(id string) (*function, error) {
	props, err := r.tpl.FunctionProperties(id)
	if err != nil {
		return nil, err
	}
	path := "Resources." + id + ".Properties"
	for k := range props {
		if !functionProps[k] {
			return nil, fmt.Errorf("%s.%s: the local runner does not support this function property", path, k)
		}
	}
	f := &function{logicalID: id, name: r.cfg.StackName + "-" + id, timeout: 3 * time.Second, memoryMB: 128, env: map[string]string{}}
	if v := props["FunctionName"]; v != nil {
		if f.name, err = r.resolver.String(v, path+".FunctionName"); err != nil {
			return nil, err
		}
	}
	if rt, _ := props["Runtime"].(string); rt != "provided.al2023" && rt != "provided.al2" {
		return nil, fmt.Errorf("%s.Runtime: the local runner runs provided.al2023/provided.al2 bootstrap binaries, not %q", path, rt)
	}
	codeURI, err := r.resolver.String(props["CodeUri"], path+".CodeUri")
	if err != nil || codeURI == "" {
		return nil, fmt.Errorf("%s.CodeUri: a local directory is required (%v)", path, err)
	}
	f.codeURI = filepath.Join(filepath.Dir(r.tpl.Path), codeURI)
	meta := r.tpl.Resources[id].Metadata
	f.buildMethod, _ = meta["BuildMethod"].(string)
	if f.buildMethod != "makefile" {
		return nil, fmt.Errorf("Resources.%s.Metadata.BuildMethod: the local runner builds with makefile (make build-%s), not %q", id, id, f.buildMethod)
	}
	if v := props["Timeout"]; v != nil {
		if f.timeout, err = r.resolvedSeconds(v, path+".Timeout"); err != nil {
			return nil, err
		}
	}
	if v := props["MemorySize"]; v != nil {
		if f.memoryMB, err = r.resolvedInt(v, path+".MemorySize"); err != nil {
			return nil, err
		}
	}
	if v := props["ReservedConcurrentExecutions"]; v != nil {
		if f.reserved, err = r.resolvedInt(v, path+".ReservedConcurrentExecutions"); err != nil {
			return nil, err
		}
	}
	if v := props["Environment"]; v != nil {
		env, err := r.resolver.Resolve(v, path+".Environment")
		if err != nil {
			return nil, err
		}
		vars, _ := env.(map[string]any)["Variables"].(map[string]any)
		for k, val := range vars {
			s, err := attributeString(val)
			if err != nil {
				return nil, fmt.Errorf("%s.Environment.Variables.%s: %w", path, k, err)
			}
			f.env[k] = s
		}
	}
	return f, nil
}

// resolvedSeconds resolves a property and reads it as seconds.
func (r *Runner) resolvedSeconds(v any, path string) (time.Duration, error) {
	out, err := r.resolver.Resolve(v, path)
	if err != nil {
		return 0, err
	}
	return seconds(out, path)
}

// resolvedInt resolves a property and reads it as an integer.
func (r *Runner) resolvedInt(v any, path string) (int, error) {
	out, err := r.resolver.Resolve(v, path)
	if err != nil {
		return 0, err
	}
	return intValue(out, path)
}

// build runs the function's Makefile target the way `sam build` does with
// BuildMethod: makefile, for the host's architecture, and returns the path of
// the bootstrap binary.
func (r *Runner) build(ctx context.Context, f *function) (string, error) {
	dir := filepath.Join(r.cfg.BuildDir, f.logicalID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", f.codeURI, "build-"+f.logicalID, "ARTIFACTS_DIR="+dir)
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build %s (make build-%s in %s): %w\n%s", f.logicalID, f.logicalID, f.codeURI, err, strings.TrimSpace(string(out)))
	}
	bin := filepath.Join(dir, "bootstrap")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("build %s: make build-%s did not produce %s", f.logicalID, f.logicalID, bin)
	}
	return bin, nil
}

// buildAll builds every function that has no in-process handler, two at a
// time, and returns the binaries by logical id.
func (r *Runner) buildAll(ctx context.Context, fns []*function) (map[string]string, error) {
	var (
		mu   sync.Mutex
		bins = map[string]string{}
		errs []string
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 2)
	)
	for _, f := range fns {
		if _, inProcess := r.cfg.Handlers[f.logicalID]; inProcess {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bin, err := r.build(ctx, f)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			bins[f.logicalID] = bin
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return bins, nil
}
