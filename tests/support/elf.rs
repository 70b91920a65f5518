//! The one ELF reader of the tests and the benchmark: what the loader needs to know about an
//! executable (a 64-bit little-endian ELF file), read from its program and section headers.

/// What an executable needs at load time, and how it was linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfFacts {
    /// A PT_INTERP program header: it needs a dynamic loader.
    pub interpreter: bool,
    /// DT_NEEDED entries: shared libraries.
    pub needed: usize,
    /// ELF type ET_DYN (a PIE, loaded at a random address) rather than ET_EXEC.
    pub position_independent: bool,
    /// A DT_RELR entry: packed relative relocations.
    pub relr: bool,
    /// A SHT_SYMTAB section: not stripped.
    pub symtab: bool,
}

/// The [`ElfFacts`] of `elf`, or why it is not a 64-bit little-endian ELF file. Every read is
/// bounds-checked: a truncated or foreign file is an error, never a panic.
pub fn read(elf: &[u8]) -> Result<ElfFacts, String> {
    if elf.len() <= 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bytes = |at: usize, n: usize| {
        elf.get(at..at + n)
            .ok_or_else(|| format!("truncated ELF file: no {n} bytes at {at:#x}"))
    };
    let u16_at = |at| bytes(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at| bytes(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at| {
        bytes(at, 8).map(|b| {
            let mut word = [0u8; 8];
            word.copy_from_slice(b);
            u64::from_le_bytes(word) as usize
        })
    };
    let mut facts = ElfFacts {
        interpreter: false,
        needed: 0,
        position_independent: u16_at(0x10)? == 3, // e_type ET_DYN
        relr: false,
        symtab: false,
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        match u32_at(header)? {
            3 => facts.interpreter = true, // PT_INTERP
            2 => {
                // PT_DYNAMIC: (d_tag, d_val) pairs up to DT_NULL; DT_NEEDED = 1, DT_RELR = 36.
                let (offset, size) = (u64_at(header + 8)?, u64_at(header + 32)?);
                for entry in (offset..offset + size).step_by(16) {
                    match u64_at(entry)? {
                        0 => break,
                        1 => facts.needed += 1,
                        36 => facts.relr = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?);
    for i in 0..shnum {
        if u32_at(shoff + i * shentsize + 4)? == 2 {
            facts.symtab = true; // SHT_SYMTAB
        }
    }
    Ok(facts)
}
