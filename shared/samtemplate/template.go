// Package samtemplate reads feedpipe's SAM template (template.yaml), the only
// wiring of the service: it parses the YAML with its CloudFormation short-form
// tags (!Ref, !GetAtt, !Sub, …), merges Globals into each
// AWS::Serverless::Function, and resolves intrinsic functions for a given set
// of parameter values and physical names.
//
// What the local runner does not understand is an error that names the
// feature and where it is in the template, never silently ignored.
package samtemplate

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed SAM template. Values are plain Go values: map[string]any,
// []any, string, int, float64, bool; intrinsic functions are in their long
// form ({"Ref": "X"}, {"Fn::GetAtt": ["X", "Arn"]}, {"Fn::Sub": "…"}).
type Template struct {
	Path       string
	Transform  any
	Parameters map[string]Parameter
	Conditions map[string]any
	Globals    map[string]any
	Resources  map[string]Resource
	Outputs    map[string]any
}

// Parameter is one template parameter.
type Parameter struct {
	Type          string
	Default       any
	AllowedValues []any
	Description   string
}

// Resource is one resource of the template.
type Resource struct {
	Name       string
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	DependsOn  []string
	Condition  string
}

// Load reads and parses the template at path.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Path = path
	return t, nil
}

// Parse parses a template document.
func Parse(doc []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("empty template")
	}
	v, err := convert(root.Content[0], "")
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template is not a mapping")
	}
	t := &Template{
		Transform:  top["Transform"],
		Parameters: map[string]Parameter{},
		Conditions: asMap(top["Conditions"]),
		Globals:    asMap(top["Globals"]),
		Resources:  map[string]Resource{},
		Outputs:    asMap(top["Outputs"]),
	}
	for name, raw := range asMap(top["Parameters"]) {
		p := asMap(raw)
		param := Parameter{Default: p["Default"]}
		param.Type, _ = p["Type"].(string)
		param.Description, _ = p["Description"].(string)
		param.AllowedValues, _ = p["AllowedValues"].([]any)
		t.Parameters[name] = param
	}
	for name, raw := range asMap(top["Resources"]) {
		r := asMap(raw)
		res := Resource{Name: name, Properties: asMap(r["Properties"]), Metadata: asMap(r["Metadata"])}
		res.Type, _ = r["Type"].(string)
		res.Condition, _ = r["Condition"].(string)
		switch d := r["DependsOn"].(type) {
		case string:
			res.DependsOn = []string{d}
		case []any:
			for _, x := range d {
				if s, ok := x.(string); ok {
					res.DependsOn = append(res.DependsOn, s)
				}
			}
		}
		if res.Type == "" {
			return nil, fmt.Errorf("Resources.%s: missing Type", name)
		}
		t.Resources[name] = res
	}
	return t, nil
}

// ResourcesOfType returns the names of the resources of one type, sorted.
func (t *Template) ResourcesOfType(typ string) []string {
	var names []string
	for name, r := range t.Resources {
		if r.Type == typ {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// FunctionProperties returns a function's properties with the template's
// Globals.Function merged in as SAM merges them: maps merge key by key (the
// function wins), lists are concatenated, scalars are replaced.
func (t *Template) FunctionProperties(name string) (map[string]any, error) {
	r, ok := t.Resources[name]
	if !ok || r.Type != "AWS::Serverless::Function" {
		return nil, fmt.Errorf("no AWS::Serverless::Function %q in the template", name)
	}
	return mergeGlobals(asMap(t.Globals["Function"]), r.Properties), nil
}

func mergeGlobals(global, local map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range global {
		out[k] = v
	}
	for k, v := range local {
		g, ok := out[k]
		if !ok {
			out[k] = v
			continue
		}
		gm, gok := g.(map[string]any)
		lm, lok := v.(map[string]any)
		if gok && lok && !isIntrinsic(gm) && !isIntrinsic(lm) {
			out[k] = mergeGlobals(gm, lm)
			continue
		}
		gl, gok := g.([]any)
		ll, lok := v.([]any)
		if gok && lok {
			out[k] = append(append([]any{}, gl...), ll...)
			continue
		}
		out[k] = v
	}
	return out
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// shortTags maps the YAML short forms to CloudFormation's long forms.
var shortTags = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition",
	"!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!Join": "Fn::Join", "!Select": "Fn::Select",
	"!Split": "Fn::Split", "!If": "Fn::If", "!Equals": "Fn::Equals", "!Not": "Fn::Not",
	"!And": "Fn::And", "!Or": "Fn::Or", "!FindInMap": "Fn::FindInMap", "!Base64": "Fn::Base64",
	"!ImportValue": "Fn::ImportValue", "!GetAZs": "Fn::GetAZs", "!Cidr": "Fn::Cidr",
	"!Transform": "Fn::Transform", "!ToJsonString": "Fn::ToJsonString", "!Length": "Fn::Length",
}

// convert turns a YAML node into plain values, rewriting short-form tags.
func convert(n *yaml.Node, path string) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			val, err := convert(n.Content[i+1], join(path, key))
			if err != nil {
				return nil, err
			}
			m[key] = val
		}
		v = m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			val, err := convert(c, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		v = l
	case yaml.ScalarNode:
		if customTag(n.Tag) && shortTags[n.Tag] == "" {
			return nil, fmt.Errorf("%s (line %d): unknown tag %s", path, n.Line, n.Tag)
		}
		if customTag(n.Tag) {
			v = n.Value
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s (line %d): %w", path, n.Line, err)
		}
	case yaml.AliasNode:
		return convert(n.Alias, path)
	default:
		return nil, fmt.Errorf("%s (line %d): unsupported YAML node", path, n.Line)
	}
	long, ok := shortTags[n.Tag]
	if !ok {
		if customTag(n.Tag) && n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s (line %d): unknown tag %s", path, n.Line, n.Tag)
		}
		return v, nil
	}
	if long == "Fn::GetAtt" {
		if s, ok := v.(string); ok {
			res, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("%s (line %d): !GetAtt %q needs Resource.Attribute", path, n.Line, s)
			}
			v = []any{res, attr}
		}
	}
	return map[string]any{long: v}, nil
}

// customTag reports whether tag is a local tag such as !Ref, not one of
// YAML's own (!!str, !!map, …).
func customTag(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}
