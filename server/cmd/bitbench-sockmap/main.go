//go:build linux

// Command bitbench-sockmap is a benchmark reference, not part of bitd: a TCP
// relay whose data path runs entirely in the kernel. It accepts PostgreSQL
// clients on -listen, opens a TCP connection to -backend for each, puts both
// sockets into a BPF sockmap and lets a BPF sk_skb verdict program redirect
// every arriving segment to the peer socket. No byte passes through user
// space and the process never wakes for a message, so what it costs per
// round trip is the floor for any relay that sits between two sockets on the
// machine: scripts/bench/pgbench.sh runs it beside bitd's proxy and PgBouncer
// (target "kernel") to show how much of the gap to direct is the relaying
// itself. There is no authentication and no protocol handling: the client
// talks to PostgreSQL as if directly.
//
// Needs CAP_BPF and CAP_NET_ADMIN (root). Unix-socket backends are not
// supported: the kernel does not redirect into an AF_UNIX socket's send side.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept clients on")
	backend := flag.String("backend", "", "PostgreSQL host:port (TCP)")
	flag.Parse()
	if *backend == "" {
		log.Fatal("bitbench-sockmap: -backend host:port is required")
	}
	r, err := newRedirector(1 << 14)
	if err != nil {
		log.Fatalf("bitbench-sockmap: %v (needs root, or CAP_BPF and CAP_NET_ADMIN, and a kernel with BPF sockmap)", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go r.serve(c.(*net.TCPConn), *backend)
	}
}

// redirector owns the two maps and the program: socks (a sockmap: slot →
// socket) and peers (a hash: socket cookie → the slot of its peer).
type redirector struct {
	socks, peers int
	mu           sync.Mutex
	free         []uint32 // free slot pairs (even slots)
}

func newRedirector(pairs uint32) (*redirector, error) {
	r := &redirector{}
	var err error
	if r.socks, err = mapCreate(unix.BPF_MAP_TYPE_SOCKMAP, 4, 4, 2*pairs); err != nil {
		return nil, fmt.Errorf("creating the sockmap: %w", err)
	}
	if r.peers, err = mapCreate(unix.BPF_MAP_TYPE_HASH, 8, 4, 2*pairs); err != nil {
		return nil, fmt.Errorf("creating the peer map: %w", err)
	}
	prog, err := loadVerdict(r.peers, r.socks)
	if err != nil {
		return nil, err
	}
	if err := progAttach(r.socks, prog, unix.BPF_SK_SKB_VERDICT); err != nil {
		return nil, fmt.Errorf("attaching the verdict program: %w", err)
	}
	for i := pairs; i > 0; i-- {
		r.free = append(r.free, 2*(i-1))
	}
	return r, nil
}

func (r *redirector) serve(client *net.TCPConn, backendAddr string) {
	defer client.Close()
	bc, err := net.Dial("tcp", backendAddr)
	if err != nil {
		log.Printf("backend: %v", err)
		return
	}
	backend := bc.(*net.TCPConn)
	defer backend.Close()
	cfd, bfd := connFD(client), connFD(backend)
	r.mu.Lock()
	if len(r.free) == 0 {
		r.mu.Unlock()
		log.Print("no free sockmap slots")
		return
	}
	slot := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	r.mu.Unlock()
	cslot, bslot := slot, slot+1
	ccookie, err1 := unix.GetsockoptUint64(int(cfd), unix.SOL_SOCKET, unix.SO_COOKIE)
	bcookie, err2 := unix.GetsockoptUint64(int(bfd), unix.SOL_SOCKET, unix.SO_COOKIE)
	if err := errors.Join(err1, err2,
		mapUpdate(r.socks, unsafe.Pointer(&cslot), unsafe.Pointer(&cfd)),
		mapUpdate(r.socks, unsafe.Pointer(&bslot), unsafe.Pointer(&bfd)),
		mapUpdate(r.peers, unsafe.Pointer(&ccookie), unsafe.Pointer(&bslot)),
		mapUpdate(r.peers, unsafe.Pointer(&bcookie), unsafe.Pointer(&cslot))); err != nil {
		log.Printf("sockmap update: %v", err)
		return
	}
	// Bytes the client sent before its socket joined the map (the startup
	// packet) were not seen by the program: pass them on by hand. The
	// client waits for an answer before it sends more, so nothing can
	// overtake them.
	if n, _ := unix.IoctlGetInt(int(cfd), unix.SIOCINQ); n > 0 {
		buf := make([]byte, n)
		if n, err = io.ReadFull(client, buf); err == nil {
			_, err = backend.Write(buf[:n])
		}
		if err != nil {
			log.Printf("forwarding the first bytes: %v", err)
			return
		}
	}
	// Data never reaches these sockets' receive queues; a read returns
	// only at end of stream or on error.
	done := make(chan struct{}, 2)
	for _, c := range []net.Conn{client, backend} {
		go func() {
			var b [1]byte
			_, _ = c.Read(b[:])
			done <- struct{}{}
		}()
	}
	<-done
	_ = mapDelete(r.peers, unsafe.Pointer(&ccookie))
	_ = mapDelete(r.peers, unsafe.Pointer(&bcookie))
	_ = mapDelete(r.socks, unsafe.Pointer(&cslot))
	_ = mapDelete(r.socks, unsafe.Pointer(&bslot))
	client.Close()
	backend.Close()
	<-done
	r.mu.Lock()
	r.free = append(r.free, slot)
	r.mu.Unlock()
}

func connFD(c *net.TCPConn) uint32 {
	rc, err := c.SyscallConn()
	if err != nil {
		log.Fatal(err)
	}
	var fd uint32
	_ = rc.Control(func(f uintptr) { fd = uint32(f) })
	return fd
}

// --- the BPF program ----------------------------------------------------------

// insn is struct bpf_insn.
type insn struct {
	code uint8
	regs uint8 // dst | src<<4
	off  int16
	imm  int32
}

const (
	opMovReg  = 0xbf // BPF_ALU64|BPF_MOV|BPF_X
	opMovImm  = 0xb7 // BPF_ALU64|BPF_MOV|BPF_K
	opAddImm  = 0x07 // BPF_ALU64|BPF_ADD|BPF_K
	opStxDW   = 0x7b // BPF_STX|BPF_MEM|BPF_DW
	opLdxW    = 0x61 // BPF_LDX|BPF_MEM|BPF_W
	opLdImm64 = 0x18 // BPF_LD|BPF_IMM|BPF_DW (two slots)
	opJeqImm  = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
	opCall    = 0x85
	opExit    = 0x95

	pseudoMapFD = 1

	fnMapLookupElem   = 1
	fnGetSocketCookie = 46
	fnSkRedirectMap   = 52

	skPass = 1
)

func reg(dst, src uint8) uint8 { return dst | src<<4 }

// loadVerdict loads:
//
//	r6 = skb
//	key = get_socket_cookie(skb)           // on the stack at r10-8
//	slot = map_lookup_elem(peers, &key)
//	if slot == NULL: return SK_PASS         // not ours: leave it queued
//	return sk_redirect_map(skb, socks, *slot, 0)   // to the peer's send side
func loadVerdict(peers, socks int) (int, error) {
	p := []insn{
		{opMovReg, reg(6, 1), 0, 0},
		{opCall, 0, 0, fnGetSocketCookie},
		{opStxDW, reg(10, 0), -8, 0},
		{opMovReg, reg(2, 10), 0, 0},
		{opAddImm, reg(2, 0), 0, -8},
		{opLdImm64, reg(1, pseudoMapFD), 0, int32(peers)}, {},
		{opCall, 0, 0, fnMapLookupElem},
		{opJeqImm, reg(0, 0), 7, 0}, // to "r0 = SK_PASS"
		{opLdxW, reg(3, 0), 0, 0},
		{opMovReg, reg(1, 6), 0, 0},
		{opLdImm64, reg(2, pseudoMapFD), 0, int32(socks)}, {},
		{opMovImm, reg(4, 0), 0, 0},
		{opCall, 0, 0, fnSkRedirectMap},
		{opExit, 0, 0, 0},
		{opMovImm, reg(0, 0), 0, skPass},
		{opExit, 0, 0, 0},
	}
	license := []byte("GPL\x00") // bpf_sk_redirect_map is GPL-only
	logBuf := make([]byte, 1<<14)
	attr := struct {
		progType, insnCnt uint32
		insns, license    unsafe.Pointer
		logLevel, logSize uint32
		logBuf            unsafe.Pointer
	}{
		progType: unix.BPF_PROG_TYPE_SK_SKB, insnCnt: uint32(len(p)),
		insns: unsafe.Pointer(&p[0]), license: unsafe.Pointer(&license[0]),
		logLevel: 1, logSize: uint32(len(logBuf)), logBuf: unsafe.Pointer(&logBuf[0]),
	}
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		end := 0
		for end < len(logBuf) && logBuf[end] != 0 {
			end++
		}
		return 0, fmt.Errorf("loading the verdict program: %w\n%s", err, logBuf[:end])
	}
	return fd, nil
}

// --- bpf(2) -------------------------------------------------------------------

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func mapCreate(typ, keySize, valueSize, maxEntries uint32) (int, error) {
	attr := struct{ typ, keySize, valueSize, maxEntries, flags uint32 }{typ, keySize, valueSize, maxEntries, 0}
	return bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// Pointers stay unsafe.Pointer inside the attribute structs (8 bytes, like
// the kernel's __aligned_u64) so that the garbage collector and stack
// copying see them.
type elemAttr struct {
	fd         uint32
	_          uint32
	key, value unsafe.Pointer
	flags      uint64
}

func mapUpdate(fd int, key, value unsafe.Pointer) error {
	attr := elemAttr{fd: uint32(fd), key: key, value: value}
	_, err := bpf(unix.BPF_MAP_UPDATE_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

func mapDelete(fd int, key unsafe.Pointer) error {
	attr := elemAttr{fd: uint32(fd), key: key}
	_, err := bpf(unix.BPF_MAP_DELETE_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

func progAttach(target, prog int, typ uint32) error {
	attr := struct{ target, prog, typ, flags uint32 }{uint32(target), uint32(prog), typ, 0}
	_, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}
