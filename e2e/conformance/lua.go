package conformance

import (
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

// argocdDir holds the health checks, relative to this package.
const argocdDir = "../../config/argocd"

// Health is what an Argo CD health script returns.
type Health struct {
	Status  string
	Message string
}

// health runs the script at path on obj the way Argo CD's Lua VM does: a
// gopher-lua state with only the base, table, string and math libraries,
// the object as the global `obj`, and the returned table read back.
func health(path string, obj map[string]any) (Health, error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return Health{}, err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(string(script)); err != nil {
		return Health{}, fmt.Errorf("%s: %w", path, err)
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("%s returned %s, not a table", path, l.Get(-1).Type())
	}
	return Health{
		Status:  lua.LVAsString(table.RawGetString("status")),
		Message: lua.LVAsString(table.RawGetString("message")),
	}, nil
}

// toLua converts decoded JSON/YAML into Lua values, as Argo CD does for
// unstructured objects (maps become tables keyed by string, lists become
// arrays starting at 1).
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, x := range v {
			t.RawSetString(k, toLua(l, x))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, x := range v {
			t.Append(toLua(l, x))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		return lua.LString(fmt.Sprint(v))
	}
}
