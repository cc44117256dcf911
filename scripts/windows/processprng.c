/* bcryptprimitives.dll for Wine 8, which has none: Rust's std (1.78 and later) takes its random
 * bytes from ProcessPrng there. This one asks advapi32's RtlGenRandom (SystemFunction036), in
 * steps that fit its ULONG length. Built by scripts/windows-check.sh into the Wine prefix. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE out, SIZE_T len)
{
    while (len > 0) {
        ULONG step = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(out, step))
            return FALSE;
        out += step;
        len -= step;
    }
    return TRUE;
}
