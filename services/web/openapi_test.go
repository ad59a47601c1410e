package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// schema is the part of an OpenAPI 3.0 schema object openapi.json uses.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Nullable             bool               `json:"nullable"`
	Enum                 []string           `json:"enum"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *schema            `json:"additionalProperties"`
	Items                *schema            `json:"items"`
}

type apiDoc struct {
	Paths map[string]map[string]struct {
		Responses map[string]struct {
			Content map[string]struct {
				Schema *schema `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

// conform lists where v (decoded JSON) departs from s: a field the schema
// does not declare, a declared field missing (the Go types write every
// field), a wrong type, a null where not nullable, a value outside the
// enum, a time that does not parse.
func (d *apiDoc) conform(at string, s *schema, v any) []string {
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		ref, ok := d.Components.Schemas[name]
		if !ok {
			return []string{at + ": no schema " + s.Ref}
		}
		s = ref
	}
	if v == nil {
		if s.Nullable {
			return nil
		}
		return []string{at + ": null, not nullable"}
	}
	bad := func(format string, args ...any) []string { return []string{at + ": " + fmt.Sprintf(format, args...)} }
	switch s.Type {
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return bad("%T, want object", v)
		}
		var out []string
		for k, fv := range o {
			ps, ok := s.Properties[k]
			if !ok {
				ps = s.AdditionalProperties
			}
			if ps == nil {
				out = append(out, at+"."+k+": not in the schema")
				continue
			}
			out = append(out, d.conform(at+"."+k, ps, fv)...)
		}
		for k := range s.Properties {
			if _, ok := o[k]; !ok {
				out = append(out, at+"."+k+": in the schema, not in the answer")
			}
		}
		return out
	case "array":
		a, ok := v.([]any)
		if !ok {
			return bad("%T, want array", v)
		}
		var out []string
		for i, e := range a {
			out = append(out, d.conform(fmt.Sprintf("%s[%d]", at, i), s.Items, e)...)
		}
		return out
	case "string":
		str, ok := v.(string)
		if !ok {
			return bad("%T, want string", v)
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			return bad("%q not in %q", str, s.Enum)
		}
		layout := map[string]string{"date-time": time.RFC3339Nano, "date": time.DateOnly}[s.Format]
		if _, err := time.Parse(layout, str); layout != "" && err != nil {
			return bad("%q is not a %s", str, s.Format)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			return bad("%v, want integer", v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return bad("%T, want number", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("%T, want boolean", v)
		}
	default:
		return bad("schema type %q unknown to this test", s.Type)
	}
	return nil
}

// Every answer of the API over the fixture, 200 and errors alike, has the
// shape openapi.json gives its path and status code.
func TestOpenAPIShapes(t *testing.T) {
	var doc apiDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, nil)
	hostile := "x%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
	for _, c := range []struct{ pattern, path string }{
		{"/api/v1/targets", "/api/v1/targets?per_page=1000"},
		{"/api/v1/targets", "/api/v1/targets?state=sideways"},
		{"/api/v1/targets/{id}", "/api/v1/targets/alpha"},
		{"/api/v1/targets/{id}", "/api/v1/targets/delta"},
		{"/api/v1/targets/{id}", "/api/v1/targets/" + hostile},
		{"/api/v1/targets/{id}", "/api/v1/targets/nope"},
		{"/api/v1/targets/{id}/hourly", "/api/v1/targets/alpha/hourly?range=90d"},
		{"/api/v1/targets/{id}/hourly", "/api/v1/targets/alpha/hourly?range=1y"},
		{"/api/v1/targets/{id}/daily", "/api/v1/targets/alpha/daily"},
		{"/api/v1/targets/{id}/daily", "/api/v1/targets/delta/daily"},
		{"/api/v1/targets/{id}/phases", "/api/v1/targets/alpha/phases"},
		{"/api/v1/targets/{id}/failures", "/api/v1/targets/alpha/failures"},
		{"/api/v1/targets/{id}/failures", "/api/v1/targets/nope/failures"},
		{"/api/v1/targets/{id}/incidents", "/api/v1/targets/alpha/incidents?range=90d"},
		{"/api/v1/targets/{id}/incidents", "/api/v1/targets/bravo/incidents"},
		{"/api/v1/incidents", "/api/v1/incidents"},
		{"/api/v1/incidents", "/api/v1/incidents?limit=0"},
	} {
		a := get(t, base+c.path)
		resp, ok := doc.Paths[c.pattern]["get"].Responses[fmt.Sprint(a.code)]
		if !ok {
			t.Errorf("%s: %d, not documented", c.path, a.code)
			continue
		}
		s := resp.Content["application/json"].Schema
		if s == nil {
			t.Errorf("%s: %d has no application/json schema", c.path, a.code)
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(a.body), &v); err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if probs := doc.conform("", s, v); len(probs) > 0 {
			t.Errorf("%s (%d) departs from openapi.json:\n%s", c.path, a.code, strings.Join(probs, "\n"))
		}
	}
}
