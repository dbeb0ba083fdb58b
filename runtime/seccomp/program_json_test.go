package seccomp

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The program the init loads is exactly the one the runtime compiled.
func TestProgramJSONRoundTrip(t *testing.T) {
	prog, err := Compile(DefaultPolicy(nil))
	if err != nil {
		t.Fatal(err)
	}
	prog.Flags, prog.Notify = 5, true
	b, err := json.Marshal(prog)
	if err != nil {
		t.Fatal(err)
	}
	var back Program
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, prog) {
		t.Fatalf("round trip changed the program: %d instructions, flags %d, notify %v; want %d, %d, %v",
			len(back.Filter), back.Flags, back.Notify, len(prog.Filter), prog.Flags, prog.Notify)
	}
	if err := json.Unmarshal([]byte(`{"filter":"AAAA"}`), &back); err == nil {
		t.Error("a filter of 3 bytes was accepted")
	}
}
