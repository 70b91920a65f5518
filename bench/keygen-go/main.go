// keygen-go: Go's crypto/rsa key generation, the reference for certboot's (benches/keygen.rs
// runs it beside certboot's in the same run; standard library only, no modules to download).
//
// Usage: keygen-go BITS:COUNT:BUDGET_SECONDS...   (one line per key: "BITS MILLISECONDS")
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	for _, arg := range os.Args[1:] {
		parts := strings.Split(arg, ":")
		if len(parts) != 3 {
			fmt.Fprintf(os.Stderr, "keygen-go: %q is not BITS:COUNT:BUDGET_SECONDS\n", arg)
			os.Exit(2)
		}
		bits, err1 := strconv.Atoi(parts[0])
		count, err2 := strconv.Atoi(parts[1])
		budget, err3 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || err3 != nil {
			fmt.Fprintf(os.Stderr, "keygen-go: %q: numbers expected\n", arg)
			os.Exit(2)
		}
		// One warm-up key, as certboot's side does (2048-bit whatever the size measured: it pages in
		// the code and seeds the DRBG; the bench starts one process per round).
		if _, err := rsa.GenerateKey(rand.Reader, 2048); err != nil {
			fmt.Fprintf(os.Stderr, "keygen-go: %d bits: %v\n", bits, err)
			os.Exit(1)
		}
		start := time.Now()
		for n := 0; n < count && (n < 5 || time.Since(start) < time.Duration(budget)*time.Second); n++ {
			t := time.Now()
			if _, err := rsa.GenerateKey(rand.Reader, bits); err != nil {
				fmt.Fprintf(os.Stderr, "keygen-go: %d bits: %v\n", bits, err)
				os.Exit(1)
			}
			fmt.Printf("%d %.3f\n", bits, float64(time.Since(t).Microseconds())/1000)
		}
	}
}
