package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// The config file is TOML. Its keys are flag names: top-level keys apply
// to every command that has that flag, and a table named after a command
// ([watch-store], [push], ...) applies to that command only. Flags given
// on the command line win over the file, a command's table over the top
// level. Secrets are never inline: keys name files (signing-key,
// token-file) or come from the environment.
const (
	configFlag        = "config"
	defaultConfigFile = "/etc/nixpush/config.toml"
)

// configPath is the file to read: --config, $NIXPUSH_CONFIG, or the
// default file when it exists. required says a missing file is an error.
func configPath(fs *pflag.FlagSet) (path string, required bool) {
	if p, _ := fs.GetString(configFlag); p != "" {
		return p, true
	}
	if p := os.Getenv("NIXPUSH_CONFIG"); p != "" {
		return p, true
	}
	return defaultConfigFile, false
}

// applyConfig sets every flag of command the command line left alone from
// the file; known is every command's vocabulary (see vocabulary).
func applyConfig(fs *pflag.FlagSet, command string, known map[string]map[string]bool) error {
	path, required := configPath(fs)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return usageError("read config: %w", err)
	}
	cfg, err := parseConfig(path, raw, known)
	if err != nil {
		return usageError("%w", err)
	}
	if err := cfg.apply(fs, command); err != nil {
		return usageError("%w", err)
	}
	return nil
}

// config is a parsed file: top-level settings and per-command tables.
type config struct {
	path     string
	text     string
	top      map[string]any
	commands map[string]map[string]any
}

func parseConfig(path string, raw []byte, known map[string]map[string]bool) (*config, error) {
	var doc map[string]any
	if err := toml.Unmarshal(raw, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("config %s line %d column %d: %s", path, row, col, de.Error())
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c := &config{path: path, text: string(raw), top: map[string]any{}, commands: map[string]map[string]any{}}
	for k, v := range doc {
		if table, ok := v.(map[string]any); ok {
			if _, isCommand := known[k]; !isCommand {
				return nil, c.errorAt("", k, "unknown command table [%s]", k)
			}
			for key := range table {
				if !known[k][key] {
					return nil, c.errorAt(k, key, "nixpush %s has no setting %q", k, key)
				}
			}
			c.commands[k] = table
			continue
		}
		if !anyCommandHas(known, k) {
			return nil, c.errorAt("", k, "unknown setting %q", k)
		}
		c.top[k] = v
	}
	return c, nil
}

// apply sets the flags of one command from the file.
func (c *config) apply(fs *pflag.FlagSet, command string) error {
	settings := map[string]any{}
	for k, v := range c.top {
		settings[k] = v
	}
	for k, v := range c.commands[command] {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || f.Changed || k == configFlag {
			continue // another command's setting, or given on the command line
		}
		table := "" // where k is set, for error messages
		if _, ok := c.commands[command][k]; ok {
			table = command
		}
		values, err := configValues(settings[k])
		if err != nil {
			return c.errorAt(table, k, "%s: %v", k, err)
		}
		sv, repeatable := f.Value.(pflag.SliceValue)
		if !repeatable && len(values) != 1 {
			return c.errorAt(table, k, "%s takes one value, not a list", k)
		}
		if repeatable && len(values) == 0 {
			// An empty list clears the default (upstream-key = []).
			if err := sv.Replace(nil); err != nil {
				return c.errorAt(table, k, "%s: %v", k, err)
			}
			f.Changed = true
			continue
		}
		for _, v := range values {
			if err := fs.Set(k, v); err != nil {
				return c.errorAt(table, k, "%s: %v", k, err)
			}
		}
	}
	return nil
}

// configValues turns a TOML value into the strings a flag parses.
func configValues(v any) ([]string, error) {
	switch v := v.(type) {
	case string, bool, int64, float64:
		return []string{fmt.Sprint(v)}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, err := configValues(e)
			if err != nil || len(s) != 1 {
				return nil, fmt.Errorf("lists may hold only strings, numbers and booleans")
			}
			out = append(out, s[0])
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// errorAt names the file and the line where key is set in table ("" for
// the top level, where a table's own name is a key too).
func (c *config) errorAt(table, key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := c.lineOf(table, key); line > 0 {
		return fmt.Errorf("config %s line %d: %s", c.path, line, msg)
	}
	return fmt.Errorf("config %s: %s", c.path, msg)
}

var tableHeader = regexp.MustCompile(`^[ \t]*\[[ \t]*"?([^"\]]*?)"?[ \t]*\]`)

// lineOf is the 1-based line that sets key in table, or that opens the
// table key when table is ""; failing that, the first line that sets key
// anywhere (inline tables); 0 if none does.
func (c *config) lineOf(table, key string) int {
	set := regexp.MustCompile(`^[ \t]*"?` + regexp.QuoteMeta(key) + `"?[ \t]*=`)
	current, first := "", 0
	for i, line := range strings.Split(c.text, "\n") {
		if m := tableHeader.FindStringSubmatch(line); m != nil {
			current = m[1]
			if table == "" && current == key {
				return i + 1
			}
			continue
		}
		if set.MatchString(line) {
			if current == table {
				return i + 1
			}
			if first == 0 {
				first = i + 1
			}
		}
	}
	return first
}

func anyCommandHas(known map[string]map[string]bool, key string) bool {
	for _, names := range known {
		if names[key] {
			return true
		}
	}
	return false
}
