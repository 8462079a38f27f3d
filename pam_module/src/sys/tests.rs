//! Layout tests: the structs must be what libpam's header says, on this
//! target. Two independent checks: the C layout rules applied to this
//! target's `int` and pointer, and a probe compiled by `cc` against the
//! real `<security/pam_appl.h>`.

use std::ffi::c_int;
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use super::*;

/// Offsets and size of a C struct whose fields have these (size, align),
/// by the C rules: each field at the next multiple of its alignment, the
/// whole rounded up to the largest alignment.
fn c_layout(fields: &[(usize, usize)]) -> (Vec<usize>, usize) {
    let mut offsets = Vec::new();
    let mut end: usize = 0;
    let mut max_align: usize = 1;
    for &(size, align) in fields {
        let offset = end.next_multiple_of(align);
        offsets.push(offset);
        end = offset + size;
        max_align = max_align.max(align);
    }
    (offsets, end.next_multiple_of(max_align))
}

#[test]
fn structs_follow_the_c_layout_of_the_header_on_this_target() {
    // `int` and any pointer (data or function), as the header uses them.
    let int = (size_of::<c_int>(), align_of::<c_int>());
    let ptr = (size_of::<usize>(), align_of::<usize>());

    // struct pam_message { int msg_style; const char *msg; };
    let (offsets, size) = c_layout(&[int, ptr]);
    assert_eq!(size_of::<PamMessage>(), size);
    assert_eq!(offset_of!(PamMessage, msg_style), offsets[0]);
    assert_eq!(offset_of!(PamMessage, msg), offsets[1]);

    // struct pam_response { char *resp; int resp_retcode; };
    let (offsets, size) = c_layout(&[ptr, int]);
    assert_eq!(size_of::<PamResponse>(), size);
    assert_eq!(offset_of!(PamResponse, resp), offsets[0]);
    assert_eq!(offset_of!(PamResponse, resp_retcode), offsets[1]);

    // struct pam_conv { int (*conv)(...); void *appdata_ptr; };
    // A nullable function pointer is one pointer: `None` is C's NULL.
    assert_eq!(size_of::<Option<ConvFn>>(), ptr.0);
    let (offsets, size) = c_layout(&[ptr, ptr]);
    assert_eq!(size_of::<PamConv>(), size);
    assert_eq!(offset_of!(PamConv, conv), offsets[0]);
    assert_eq!(offset_of!(PamConv, appdata_ptr), offsets[1]);

    // The figures for the usual ABIs, worked out by hand from the header:
    // LP64 (x86_64, aarch64): every struct 16 bytes, second field at 8;
    // ILP32 (i386, armhf): every struct 8 bytes, second field at 4.
    let (second, whole) = if cfg!(target_pointer_width = "64") {
        (8, 16)
    } else {
        (4, 8)
    };
    for (name, size, offset) in [
        (
            "pam_message",
            size_of::<PamMessage>(),
            offset_of!(PamMessage, msg),
        ),
        (
            "pam_response",
            size_of::<PamResponse>(),
            offset_of!(PamResponse, resp_retcode),
        ),
        (
            "pam_conv",
            size_of::<PamConv>(),
            offset_of!(PamConv, appdata_ptr),
        ),
    ] {
        assert_eq!((size, offset), (whole, second), "struct {name}");
    }
}

/// The probe's C source: one line per field, `struct field sizeof offsetof`.
const PROBE: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include <security/pam_appl.h>

#define SHOW(type, field) \
    printf("%s %s %zu %zu\n", #type, #field, sizeof(struct type), offsetof(struct type, field))

int main(void) {
    SHOW(pam_message, msg_style);
    SHOW(pam_message, msg);
    SHOW(pam_response, resp);
    SHOW(pam_response, resp_retcode);
    SHOW(pam_conv, conv);
    SHOW(pam_conv, appdata_ptr);
    return 0;
}
"#;

/// What the probe must print for veil's structs.
fn expected_probe_output() -> String {
    let lines = [
        (
            "pam_message",
            "msg_style",
            size_of::<PamMessage>(),
            offset_of!(PamMessage, msg_style),
        ),
        (
            "pam_message",
            "msg",
            size_of::<PamMessage>(),
            offset_of!(PamMessage, msg),
        ),
        (
            "pam_response",
            "resp",
            size_of::<PamResponse>(),
            offset_of!(PamResponse, resp),
        ),
        (
            "pam_response",
            "resp_retcode",
            size_of::<PamResponse>(),
            offset_of!(PamResponse, resp_retcode),
        ),
        (
            "pam_conv",
            "conv",
            size_of::<PamConv>(),
            offset_of!(PamConv, conv),
        ),
        (
            "pam_conv",
            "appdata_ptr",
            size_of::<PamConv>(),
            offset_of!(PamConv, appdata_ptr),
        ),
    ];
    lines
        .iter()
        .map(|(ty, field, size, offset)| format!("{ty} {field} {size} {offset}\n"))
        .collect()
}

/// Compiles the probe with `cc` (or `$CC`) against the installed libpam
/// headers and compares. A missing compiler or header fails the test: it
/// is the only check against the real header, so it must not pass unseen.
#[test]
fn structs_match_what_cc_reads_in_libpams_header() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("probe.c");
    let probe = dir.path().join("probe");
    std::fs::write(&source, PROBE).unwrap();
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let compiled = Command::new(&cc)
        .arg("-o")
        .arg(&probe)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler {cc:?} ({e}): this test compiles a probe against \
                 <security/pam_appl.h>; install gcc and libpam0g-dev"
            )
        });
    assert!(
        compiled.status.success(),
        "{cc:?} could not compile the layout probe (are libpam0g-dev's headers installed?):\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = Command::new(&probe).output().unwrap();
    assert!(ran.status.success(), "the layout probe failed: {ran:?}");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        expected_probe_output(),
        "libpam's header (left, from cc) and pam_veil::sys (right) disagree"
    );
}
