package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Parse decodes the documents of one file (YAML or JSON); file names the
// objects in errors. Objects before a bad document are returned along with
// the joined errors of every bad one.
func Parse(file string, data []byte) ([]Object, error) {
	docs, err := splitDocuments(file, data)
	if err != nil {
		return nil, err
	}
	var objs []Object
	var errs []error
	for i, doc := range docs {
		o, err := decodeObject(Source{File: file, Doc: i + 1}, doc, true)
		objs = append(objs, o...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return objs, errors.Join(errs...)
}

// splitDocuments returns the JSON of each non-empty document. A stream
// that starts with '{' is read as concatenated JSON objects (kubectl's
// guess too); anything else as YAML documents separated by "---" lines.
func splitDocuments(file string, data []byte) ([][]byte, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return splitJSON(file, trimmed)
	}
	var docs [][]byte
	var errs []error
	for _, c := range splitYAML(data) {
		j, err := yaml.YAMLToJSONStrict(c.text)
		if err != nil {
			errs = append(errs, fmt.Errorf("error parsing %q document %d: %s", file, len(docs)+1, shiftYAMLLines(err.Error(), c.line-1)))
			docs = append(docs, nil) // keep the numbering of later documents
			continue
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue // only comments, or nothing
		}
		docs = append(docs, j)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return docs, nil
}

func splitJSON(file string, data []byte) ([][]byte, error) {
	if data[0] == '[' {
		return nil, fmt.Errorf("error parsing %q: a JSON array is not a Kubernetes object; wrap the objects in {\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [...]}", file)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, fmt.Errorf("error parsing %q document %d: %w", file, len(docs)+1, err)
		}
		docs = append(docs, raw)
	}
}

// yamlChunk is one YAML document and the file line it starts on.
type yamlChunk struct {
	text []byte
	line int
}

// splitYAML cuts at lines that start with "---" followed by nothing but
// spaces or a comment, as apimachinery's YAMLReader does, remembering where
// each document starts so that parse errors can name file lines.
func splitYAML(data []byte) []yamlChunk {
	var out []yamlChunk
	cur := yamlChunk{line: 1}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok {
			if r := bytes.TrimSpace(rest); len(r) == 0 || r[0] == '#' {
				if len(bytes.TrimSpace(cur.text)) > 0 {
					out = append(out, cur)
				}
				cur = yamlChunk{line: lineNo + 1}
				continue
			}
		}
		cur.text = append(cur.text, line...)
	}
	if len(bytes.TrimSpace(cur.text)) > 0 {
		out = append(out, cur)
	}
	return out
}

var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// shiftYAMLLines turns the document-relative "line N" of a YAML error into
// a line of the file.
func shiftYAMLLines(msg string, by int) string {
	return yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
		return "line " + strconv.Itoa(n+by)
	})
}

// typeMeta is what decides how a document is decoded.
type typeMeta struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
}

func peekTypeMeta(src Source, doc []byte) (typeMeta, error) {
	var m map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(doc, &m); err != nil {
		return typeMeta{}, fmt.Errorf("error validating %s: not a Kubernetes object (a mapping with apiVersion, kind and metadata): %w", src, err)
	}
	str := func(v any) string { s, _ := v.(string); return s }
	tm := typeMeta{APIVersion: str(m["apiVersion"]), Kind: str(m["kind"])}
	if md, ok := m["metadata"].(map[string]any); ok {
		tm.Name, tm.Namespace = str(md["name"]), str(md["namespace"])
	}
	var missing []string
	if tm.APIVersion == "" {
		missing = append(missing, "apiVersion not set")
	}
	if tm.Kind == "" {
		missing = append(missing, "kind not set")
	}
	if len(missing) > 0 {
		return tm, fmt.Errorf("error validating %s: error validating data: [%s]; a Service starts with \"apiVersion: v1\" and \"kind: Service\", a NetworkPolicy with \"apiVersion: networking.k8s.io/v1\" and \"kind: NetworkPolicy\"", src, strings.Join(missing, ", "))
	}
	return tm, nil
}

// decodeObject decodes one document, or one item of a List (top is false).
func decodeObject(src Source, doc []byte, top bool) ([]Object, error) {
	if doc == nil {
		return nil, nil // a YAML error already reported
	}
	tm, err := peekTypeMeta(src, doc)
	if err != nil {
		return nil, err
	}
	switch {
	case tm.APIVersion == CoreAPIVersion && tm.Kind == KindService:
		o, err := decodeService(src, tm, doc)
		if err != nil {
			return nil, err
		}
		return []Object{o}, nil
	case tm.APIVersion == NetworkingAPIVersion && tm.Kind == KindNetworkPolicy:
		o, err := decodeNetworkPolicy(src, tm, doc)
		if err != nil {
			return nil, err
		}
		return []Object{o}, nil
	case top && tm.APIVersion == CoreAPIVersion && (tm.Kind == "List" || tm.Kind == "ServiceList"),
		top && tm.APIVersion == NetworkingAPIVersion && tm.Kind == "NetworkPolicyList":
		return decodeList(src, tm, doc)
	}
	return nil, fmt.Errorf("resource mapping not found for name: %q namespace: %q from %s: no matches for kind %q in version %q; knit knows kind Service in version v1 and kind NetworkPolicy in version networking.k8s.io/v1",
		tm.Name, tm.Namespace, src, tm.Kind, tm.APIVersion)
}

func decodeList(src Source, tm typeMeta, doc []byte) ([]Object, error) {
	var l struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   json.RawMessage   `json:"metadata,omitempty"` // kubectl writes resourceVersion ""
		Items      []json.RawMessage `json:"items"`
	}
	if err := strictDecode(src, tm, doc, &l); err != nil {
		return nil, err
	}
	var objs []Object
	var errs []error
	for i, item := range l.Items {
		isrc := src
		isrc.Item = i + 1
		o, err := decodeObject(isrc, item, false)
		objs = append(objs, o...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return objs, errors.Join(errs...)
}

func decodeService(src Source, tm typeMeta, doc []byte) (Object, error) {
	var ks corev1.Service
	if err := strictDecode(src, tm, doc, &ks); err != nil {
		return Object{}, err
	}
	o := Object{Source: src, APIVersion: CoreAPIVersion, Kind: KindService, Name: ks.Name, Namespace: ks.Namespace}
	if err := checkName(&o); err != nil {
		return Object{}, err
	}
	svc, err := toKnitService(&o, &ks)
	if err != nil {
		return Object{}, err
	}
	o.Service = svc
	return o, nil
}

func decodeNetworkPolicy(src Source, tm typeMeta, doc []byte) (Object, error) {
	var np networkingv1.NetworkPolicy
	if err := strictDecode(src, tm, doc, &np); err != nil {
		return Object{}, err
	}
	o := Object{Source: src, APIVersion: NetworkingAPIVersion, Kind: KindNetworkPolicy, Name: np.Name, Namespace: np.Namespace}
	if err := checkName(&o); err != nil {
		return Object{}, err
	}
	p, err := toKnitNetworkPolicy(&o, &np)
	if err != nil {
		return Object{}, err
	}
	o.NetworkPolicy = p
	return o, nil
}

func checkName(o *Object) error {
	if o.Name == "" {
		return fmt.Errorf("error validating %s: %s has no metadata.name; give it one", o.Source, o.Kind)
	}
	return nil
}

// strictDecode decodes doc into the Kubernetes type v the way the API
// server does with strict field validation: case-sensitive keys, unknown
// and duplicate fields are errors.
func strictDecode(src Source, tm typeMeta, doc []byte, v any) error {
	where := src.String()
	if tm.Name != "" {
		where += " (" + strings.ToLower(tm.Kind) + "/" + tm.Name + ")"
	}
	strict, err := kjson.UnmarshalStrict(doc, v)
	if err != nil {
		return fmt.Errorf("error validating %s: %s in version %q cannot be handled as a %s: %w", where, tm.Kind, tm.APIVersion, tm.Kind, err)
	}
	if len(strict) == 0 {
		return nil
	}
	msgs := make([]string, len(strict))
	for i, e := range strict {
		msgs[i] = e.Error()
		if strings.HasPrefix(msgs[i], "unknown field") {
			msgs[i] += fmt.Sprintf(" (a %s in version %s has no such field; check the spelling)", tm.Kind, tm.APIVersion)
		}
	}
	return fmt.Errorf("error validating %s: %s", where, strings.Join(msgs, ", "))
}
