// Package facts holds what both binaries must agree on and the kernel text
// formats both read, in one leaf package (it imports only the standard
// library), so that corral and corralfs can never drift apart:
//
//   - the corralfs layout: where the service mounts (DefaultDir), what
//     mountinfo calls the mount (FSType, FSName), the sysinfo agent's socket
//     (SeccompSocket) and the table of view files with the kernel file each
//     one stands in for (Views, Binds);
//   - kernel formats: CPU lists ("0-3,5", ParseCPUList, AppendCPUList),
//     /proc/meminfo's host totals (ParseHostMemory, ReadHostMemory), and the
//     one grammar of memory sizes on every command line (ParseSize).
package facts
