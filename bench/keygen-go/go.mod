module certboot.invalid/bench/keygen-go

go 1.26
