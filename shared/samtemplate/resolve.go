package samtemplate

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Resolver evaluates intrinsic functions. Refs and Attrs hold the physical
// values of resources (a queue's Ref is its URL, a bucket's its name, …);
// the caller fills them in as it creates the resources.
type Resolver struct {
	Template   *Template
	StackName  string
	Region     string
	AccountID  string
	Parameters map[string]string            // values that override the parameters' defaults
	Refs       map[string]string            // resource → Ref value
	Attrs      map[string]map[string]string // resource → attribute → value
}

// NewResolver returns a resolver for one stack.
func NewResolver(t *Template, stack, region, account string, params map[string]string) *Resolver {
	if params == nil {
		params = map[string]string{}
	}
	return &Resolver{Template: t, StackName: stack, Region: region, AccountID: account, Parameters: params,
		Refs: map[string]string{}, Attrs: map[string]map[string]string{}}
}

// noValue is what AWS::NoValue resolves to: the property is removed.
type noValue struct{}

// Resolve evaluates every intrinsic function in v. path names v's place in
// the template, for errors.
func (r *Resolver) Resolve(v any, path string) (any, error) {
	out, err := r.resolve(v, path)
	if _, ok := out.(noValue); ok {
		return nil, err
	}
	return out, err
}

// String resolves v and requires a string (numbers and booleans are
// formatted, as CloudFormation does for string properties).
func (r *Resolver) String(v any, path string) (string, error) {
	out, err := r.Resolve(v, path)
	if err != nil {
		return "", err
	}
	return scalarString(out, path)
}

func scalarString(v any, path string) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("%s: want a string, got %T", path, v)
	}
}

func (r *Resolver) resolve(v any, path string) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for i, e := range x {
			val, err := r.resolve(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			if _, skip := val.(noValue); !skip {
				out = append(out, val)
			}
		}
		return out, nil
	case map[string]any:
		if isIntrinsic(x) {
			for fn, arg := range x {
				return r.intrinsic(fn, arg, path)
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			val, err := r.resolve(e, join(path, k))
			if err != nil {
				return nil, err
			}
			if _, skip := val.(noValue); !skip {
				out[k] = val
			}
		}
		return out, nil
	default:
		return v, nil
	}
}

func (r *Resolver) intrinsic(fn string, arg any, path string) (any, error) {
	p := path + "." + fn
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("%s: Ref needs a name", p)
		}
		return r.ref(name, p)
	case "Fn::GetAtt":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("%s: Fn::GetAtt needs [Resource, Attribute]", p)
		}
		res, _ := parts[0].(string)
		attr, err := r.String(parts[1], p)
		if err != nil {
			return nil, err
		}
		return r.getAtt(res, attr, p)
	case "Fn::Sub":
		return r.sub(arg, p)
	case "Fn::Join":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("%s: Fn::Join needs [delimiter, [values]]", p)
		}
		sep, _ := parts[0].(string)
		vals, err := r.resolve(parts[1], p)
		if err != nil {
			return nil, err
		}
		list, ok := vals.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: Fn::Join needs a list of values", p)
		}
		strs := make([]string, len(list))
		for i, e := range list {
			if strs[i], err = scalarString(e, p); err != nil {
				return nil, err
			}
		}
		return strings.Join(strs, sep), nil
	case "Fn::Select":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("%s: Fn::Select needs [index, [values]]", p)
		}
		idxS, err := r.String(parts[0], p)
		if err != nil {
			return nil, err
		}
		idx, err := strconv.Atoi(idxS)
		if err != nil {
			return nil, fmt.Errorf("%s: Fn::Select index %q: %w", p, idxS, err)
		}
		vals, err := r.resolve(parts[1], p)
		if err != nil {
			return nil, err
		}
		list, ok := vals.([]any)
		if !ok || idx < 0 || idx >= len(list) {
			return nil, fmt.Errorf("%s: Fn::Select index %d out of range", p, idx)
		}
		return list[idx], nil
	case "Fn::Split":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("%s: Fn::Split needs [delimiter, string]", p)
		}
		sep, _ := parts[0].(string)
		s, err := r.String(parts[1], p)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, e := range strings.Split(s, sep) {
			out = append(out, e)
		}
		return out, nil
	case "Fn::If":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("%s: Fn::If needs [condition, then, else]", p)
		}
		cond, _ := parts[0].(string)
		yes, err := r.Condition(cond)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if yes {
			return r.resolve(parts[1], p)
		}
		return r.resolve(parts[2], p)
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition":
		return r.evalCondition(map[string]any{fn: arg}, p)
	default:
		return nil, fmt.Errorf("%s: the local runner does not support %s", path, fn)
	}
}

func (r *Resolver) ref(name, path string) (any, error) {
	switch name {
	case "AWS::StackName":
		return r.StackName, nil
	case "AWS::Region":
		return r.Region, nil
	case "AWS::AccountId":
		return r.AccountID, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/local", r.Region, r.AccountID, r.StackName), nil
	case "AWS::NoValue":
		return noValue{}, nil
	}
	if p, ok := r.Template.Parameters[name]; ok {
		if v, ok := r.Parameters[name]; ok {
			return v, nil
		}
		if p.Default == nil {
			return nil, fmt.Errorf("%s: parameter %s has no value and no default", path, name)
		}
		return p.Default, nil
	}
	if v, ok := r.Refs[name]; ok {
		return v, nil
	}
	if _, ok := r.Template.Resources[name]; ok {
		return nil, fmt.Errorf("%s: Ref %s: the resource has no physical value yet", path, name)
	}
	return nil, fmt.Errorf("%s: Ref to unknown name %q", path, name)
}

func (r *Resolver) getAtt(res, attr, path string) (any, error) {
	if v, ok := r.Attrs[res][attr]; ok {
		return v, nil
	}
	if rr, ok := r.Template.Resources[res]; ok {
		return nil, fmt.Errorf("%s: the local runner does not support Fn::GetAtt %s.%s (a %s)", path, res, attr, rr.Type)
	}
	return nil, fmt.Errorf("%s: Fn::GetAtt of unknown resource %q", path, res)
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (r *Resolver) sub(arg any, path string) (any, error) {
	var format string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		format = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("%s: Fn::Sub needs a string or [string, {vars}]", path)
		}
		format, _ = a[0].(string)
		m, ok := a[1].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: Fn::Sub variables must be a mapping", path)
		}
		vars = m
	default:
		return nil, fmt.Errorf("%s: Fn::Sub needs a string", path)
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(format, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}" // ${!Literal}
		}
		var val any
		var err error
		if v, ok := vars[name]; ok {
			val, err = r.resolve(v, path)
		} else if res, attr, ok := strings.Cut(name, "."); ok {
			val, err = r.getAtt(res, attr, path)
		} else {
			val, err = r.ref(name, path)
		}
		if err == nil {
			var s string
			s, err = scalarString(val, path)
			if err == nil {
				return s
			}
		}
		if firstErr == nil {
			firstErr = err
		}
		return m
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// Condition evaluates a named condition of the template.
func (r *Resolver) Condition(name string) (bool, error) {
	c, ok := r.Template.Conditions[name]
	if !ok {
		return false, fmt.Errorf("unknown condition %q", name)
	}
	v, err := r.evalCondition(c, "Conditions."+name)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

func (r *Resolver) evalCondition(c any, path string) (any, error) {
	m, ok := c.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, fmt.Errorf("%s: a condition must be one condition function", path)
	}
	for fn, arg := range m {
		list, _ := arg.([]any)
		switch fn {
		case "Condition":
			name, _ := arg.(string)
			return r.Condition(name)
		case "Fn::Equals":
			if len(list) != 2 {
				return nil, fmt.Errorf("%s: Fn::Equals needs two values", path)
			}
			a, err := r.String(list[0], path)
			if err != nil {
				return nil, err
			}
			b, err := r.String(list[1], path)
			if err != nil {
				return nil, err
			}
			return a == b, nil
		case "Fn::Not", "Fn::And", "Fn::Or":
			var vals []bool
			for _, e := range list {
				v, err := r.evalCondition(e, path)
				if err != nil {
					return nil, err
				}
				b, _ := v.(bool)
				vals = append(vals, b)
			}
			switch fn {
			case "Fn::Not":
				if len(vals) != 1 {
					return nil, fmt.Errorf("%s: Fn::Not needs one condition", path)
				}
				return !vals[0], nil
			case "Fn::And":
				for _, b := range vals {
					if !b {
						return false, nil
					}
				}
				return true, nil
			default:
				for _, b := range vals {
					if b {
						return true, nil
					}
				}
				return false, nil
			}
		default:
			return nil, fmt.Errorf("%s: %s is not a condition function", path, fn)
		}
	}
	return nil, nil
}

// ParameterNames returns the template's parameter names, sorted.
func (t *Template) ParameterNames() []string {
	names := make([]string, 0, len(t.Parameters))
	for n := range t.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
