package runspec

import (
	"os"

	"github.com/corral-dev/corral/fusefs/facts"
)

// onlineCPUs reads the host's online CPU list.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return facts.ParseCPUList(b)
}
