package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the kernel's clock ticks per second of /proc/PID/stat's
// times (sysconf(_SC_CLK_TCK), 100 on Linux).
const clockTicks = 100

// cpuTicks is a process's user and system time so far, in clock ticks
// (/proc/PID/stat's utime + stime), and with children, also what its exited
// children's it waited for (cutime + cstime).
func cpuTicks(pid string, children bool) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields that
	// count come after its closing parenthesis, from the state (field 3).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f)+2)
	}
	last := 12 // stime, field 15 (f[0] is field 3)
	if children {
		last = 14 // cstime, field 17
	}
	var n int64
	for _, v := range f[11 : last+1] { // utime is field 14
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		n += t
	}
	return n, nil
}

// ppidComm is a process's parent's ID and its command name (/proc/PID/comm).
func ppidComm(pid string) (string, string) {
	comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "", strings.TrimSpace(string(comm))
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return "", strings.TrimSpace(string(comm))
	}
	return f[1], strings.TrimSpace(string(comm))
}

// postgresTicks is the CPU time of every process named "postgres" so far
// (the postmaster and every backend and auxiliary process), plus what the
// postmaster collected of its exited children (backends that ended). Any
// other client's backends on the same server count too.
func postgresTicks() (int64, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var total int64
	found := false
	for _, d := range dirs {
		pid := d.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		ppid, comm := ppidComm(pid)
		if comm != "postgres" {
			continue
		}
		_, parent := ppidComm(ppid)
		t, err := cpuTicks(pid, parent != "postgres") // the postmaster: with its exited children
		if err != nil {
			continue // it ended meanwhile
		}
		total += t
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no process named postgres in /proc: the harness accounts Postgres's CPU only on a local server")
	}
	return total, nil
}

// cpuProcs names the processes a phase's CPU time is read of; "" for none.
type cpuProcs struct {
	serve, sim, mail string // process IDs
}

// cpuSample is the processes' CPU time at one moment, in clock ticks.
type cpuSample struct {
	serve, postgres, sim, mail, bench int64
}

// cpuSample reads the CPU time of the processes p names, Postgres's and the
// harness's own.
func (p cpuProcs) sample() (cpuSample, error) {
	var s cpuSample
	var err error
	read := func(pid string, into *int64) {
		if pid == "" || err != nil {
			return
		}
		*into, err = cpuTicks(pid, false)
	}
	read(p.serve, &s.serve)
	read(p.sim, &s.sim)
	read(p.mail, &s.mail)
	read("self", &s.bench)
	if err != nil {
		return s, err
	}
	s.postgres, err = postgresTicks()
	return s, err
}

// cpuMS is the CPU time per request, in milliseconds, of each process from
// s0 to s1 over n requests.
type cpuMS struct {
	Serve, Postgres, Sim, Mail, Bench float64
}

func cpuPerRequest(s0, s1 cpuSample, n int) cpuMS {
	ms := func(a, b int64) float64 { return round(float64(b-a)*1000/clockTicks/float64(n), 3) }
	return cpuMS{Serve: ms(s0.serve, s1.serve), Postgres: ms(s0.postgres, s1.postgres), Sim: ms(s0.sim, s1.sim),
		Mail: ms(s0.mail, s1.mail), Bench: ms(s0.bench, s1.bench)}
}

// pidOf is a child's process ID as /proc names it.
func pidOf(p *proc) string { return strconv.Itoa(p.cmd.Process.Pid) }

// dbStatements reads the serve process's reauth_db_statements_total (the
// statements its pool sent to Postgres, BEGIN and COMMIT included) from its
// GET /metrics, base being its base URL.
func dbStatements(ctx context.Context, base string) (int64, error) {
	body, err := get(ctx, base+"/metrics")
	if err != nil {
		return 0, err
	}
	defer body.Close()
	const name = "reauth_db_statements_total"
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			_, rest, _ = strings.Cut(rest, "}")
		}
		f := strings.Fields(rest) // the value, then maybe a timestamp
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		return int64(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("GET %s/metrics has no %s", base, name)
}
