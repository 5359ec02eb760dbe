// Package config loads a binary's configuration from, in rising precedence,
// the defaults in its Config struct, a JSON file, KOGGE_* environment
// variables and command-line flags, and prints the effective result.
//
// A field takes part when it carries a `config:"name"` tag; nested structs
// with a tag add a dotted prefix. The field broker.listen is read from the
// file as {"broker": {"listen": …}}, from the environment as
// KOGGE_BROKER_LISTEN and from the flag --broker.listen. A field tagged
// `secret:"true"` is printed as "(set)" or "". Supported kinds: string, bool,
// all ints and uints, float64, time.Duration ("30s") and []string
// (comma-separated in the environment and in flags).
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxFileSize bounds a configuration file.
const MaxFileSize = 1 << 20

// Source describes where a load takes its input from.
type Source struct {
	// Args are the command-line arguments after the program name.
	Args []string
	// Environ is the environment as KEY=value pairs (os.Environ()).
	Environ []string
	// Prefix is the environment prefix; default "KOGGE_".
	Prefix string
}

// Result is what Load found besides the values.
type Result struct {
	// File is the configuration file read, if any.
	File string
	// PrintConfig is set when --print-config was given.
	PrintConfig bool
	// Args are the positional arguments left after the flags.
	Args []string
}

// field is one configurable leaf.
type field struct {
	name   string // dotted, e.g. broker.listen
	value  reflect.Value
	secret bool
	usage  string
}

// Load fills cfg (a pointer to a struct holding its defaults) from the file
// named by --config or KOGGE_CONFIG, then the environment, then the flags.
func Load(cfg any, name string, src Source) (Result, error) {
	if src.Prefix == "" {
		src.Prefix = "KOGGE_"
	}
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return Result{}, fmt.Errorf("config: want a pointer to a struct, got %T", cfg)
	}
	fields, err := collect(rv.Elem(), "")
	if err != nil {
		return Result{}, err
	}
	env := map[string]string{}
	for _, kv := range src.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}

	// Flags are parsed first to find --config and --print-config, but are
	// applied last so that they win.
	var res Result
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", env[src.Prefix+"CONFIG"], "configuration file (JSON)")
	fs.BoolVar(&res.PrintConfig, "print-config", false, "print the effective configuration and exit")
	flagged := map[string]*string{}
	for _, f := range fields {
		p := new(string)
		flagged[f.name] = p
		if f.value.Kind() == reflect.Bool {
			fs.Var(boolFlag{p}, f.name, f.usage)
		} else {
			fs.StringVar(p, f.name, "", f.usage)
		}
	}
	if err := fs.Parse(src.Args); err != nil {
		return res, fmt.Errorf("%w\n%s", err, Usage(cfg, name))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	res.Args = fs.Args()

	if *configFile != "" {
		res.File = *configFile
		if err := loadFile(cfg, *configFile); err != nil {
			return res, err
		}
	}
	for _, f := range fields {
		key := src.Prefix + envName(f.name)
		if v, ok := env[key]; ok {
			if err := setValue(f.value, v); err != nil {
				return res, fmt.Errorf("environment %s: %w", key, err)
			}
		}
	}
	for _, f := range fields {
		if set[f.name] {
			if err := setValue(f.value, *flagged[f.name]); err != nil {
				return res, fmt.Errorf("flag --%s: %w", f.name, err)
			}
		}
	}
	return res, nil
}

// loadFile reads a JSON configuration file over the defaults in cfg.
func loadFile(cfg any, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("config file %s: %w", file, err)
	}
	if err := Decode(cfg, b); err != nil {
		return fmt.Errorf("config file %s: %w", file, err)
	}
	return nil
}

// Decode applies a JSON configuration document to cfg. Unknown keys, wrong
// types and trailing data are errors that name the place.
func Decode(cfg any, b []byte) error {
	if len(b) > MaxFileSize {
		return fmt.Errorf("%d bytes, at most %d", len(b), MaxFileSize)
	}
	// Decode into a generic tree first, so that keys are matched by their
	// config names rather than Go field names.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree map[string]any
	if err := dec.Decode(&tree); err != nil {
		return describeJSONError(b, err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return applyTree(reflect.ValueOf(cfg).Elem(), tree, "")
}

func applyTree(v reflect.Value, tree map[string]any, prefix string) error {
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fv, ok := fieldByTag(v, k)
		name := prefix + k
		if !ok {
			return fmt.Errorf("unknown setting %q", name)
		}
		raw := tree[k]
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Duration]() {
			sub, ok := raw.(map[string]any)
			if !ok {
				return fmt.Errorf("setting %q: want an object", name)
			}
			if err := applyTree(fv, sub, name+"."); err != nil {
				return err
			}
			continue
		}
		var s string
		switch x := raw.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		case bool:
			s = strconv.FormatBool(x)
		case []any:
			if fv.Kind() != reflect.Slice {
				return fmt.Errorf("setting %q: a list where a single value belongs", name)
			}
			parts := make([]string, len(x))
			for i, e := range x {
				str, ok := e.(string)
				if !ok {
					return fmt.Errorf("setting %q: item %d is not a string", name, i)
				}
				parts[i] = str
			}
			fv.Set(reflect.ValueOf(parts))
			continue
		case nil:
			fv.Set(reflect.Zero(fv.Type()))
			continue
		default:
			return fmt.Errorf("setting %q: an object where a value belongs", name)
		}
		if err := setValue(fv, s); err != nil {
			return fmt.Errorf("setting %q: %w", name, err)
		}
	}
	return nil
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("config"); tag == name && t.Field(i).IsExported() {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func collect(v reflect.Value, prefix string) ([]field, error) {
	var out []field
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("config")
		if tag == "" || !sf.IsExported() {
			continue
		}
		fv := v.Field(i)
		name := prefix + tag
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Duration]() {
			sub, err := collect(fv, name+".")
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if !supported(fv) {
			return nil, fmt.Errorf("config: field %s has unsupported type %s", name, fv.Type())
		}
		out = append(out, field{name: name, value: fv, secret: sf.Tag.Get("secret") == "true", usage: sf.Tag.Get("usage")})
	}
	return out, nil
}

func supported(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Slice:
		return v.Type().Elem().Kind() == reflect.String
	}
	return false
}

func setValue(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 5m", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number in range", s)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative whole number in range", s)
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		var parts []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

func envName(name string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(name))
}

// Print writes the effective configuration as JSON, with secrets masked.
func Print(w io.Writer, cfg any) error {
	tree := printTree(reflect.ValueOf(cfg).Elem())
	b, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printTree(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("config")
		if tag == "" || !sf.IsExported() {
			continue
		}
		fv := v.Field(i)
		switch {
		case fv.Type() == reflect.TypeFor[time.Duration]():
			out[tag] = time.Duration(fv.Int()).String()
		case fv.Kind() == reflect.Struct:
			out[tag] = printTree(fv)
		case sf.Tag.Get("secret") == "true":
			if fv.IsZero() {
				out[tag] = ""
			} else {
				out[tag] = "(set)"
			}
		default:
			out[tag] = fv.Interface()
		}
	}
	return out
}

// Usage lists every setting with its flag, environment variable and usage.
func Usage(cfg any, name string) string {
	fields, err := collect(reflect.ValueOf(cfg).Elem(), "")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s [--config FILE] [--print-config] [--SETTING=VALUE ...]\n\nsettings (flag, environment):\n", name)
	for _, f := range fields {
		fmt.Fprintf(&b, "  --%s, KOGGE_%s\n", f.name, envName(f.name))
		if f.usage != "" {
			fmt.Fprintf(&b, "        %s\n", f.usage)
		}
	}
	return b.String()
}

// describeJSONError adds the line and column to a JSON syntax error.
func describeJSONError(b []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var off int64
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the file ends before the JSON object does")
	default:
		return err
	}
	line := 1 + bytes.Count(b[:min(int(off), len(b))], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(b[:min(int(off), len(b))], '\n')
	return fmt.Errorf("line %d, column %d: %v", line, col, err)
}

// boolFlag lets a bool setting be given as --x or --x=false.
type boolFlag struct{ p *string }

func (b boolFlag) String() string {
	if b.p == nil {
		return ""
	}
	return *b.p
}
func (b boolFlag) Set(s string) error { *b.p = s; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

// Command is the start of a command's run: it loads cfg (Load), answers
// --help and --print-config on stdout, refuses positional arguments and
// runs validate, saying what is wrong on stderr. With exit false the
// command goes on with res; otherwise it ends with code: 0 after help or
// the printed configuration, 1 when printing failed, 2 for a bad command
// line or configuration.
func Command(cfg any, name string, src Source, stdout, stderr io.Writer, validate func() error) (res Result, code int, exit bool) {
	res, err := Load(cfg, name, src)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, Usage(cfg, name))
		return res, 0, true
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return res, 2, true
	case len(res.Args) > 0:
		fmt.Fprintf(stderr, "%s: unexpected arguments %q; settings are given as --name=value\n", name, res.Args)
		return res, 2, true
	case res.PrintConfig:
		if err := Print(stdout, cfg); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return res, 1, true
		}
		return res, 0, true
	}
	if err := validate(); err != nil {
		fmt.Fprintf(stderr, "%s: configuration:\n  %s\n", name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return res, 2, true
	}
	return res, 0, false
}
