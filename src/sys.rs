//! Small operating-system helpers: clock, host and user names.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds.
pub fn now_secs() -> i64 {
    now_nanos() / 1_000_000_000
}

/// Unix time in nanoseconds.
pub fn now_nanos() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Name of the effective user.
pub fn username() -> String {
    // SAFETY: geteuid has no preconditions.
    user_name(unsafe { libc::geteuid() })
}

/// Effective user and group IDs (read once: arca never changes them, and restore asks per file).
pub fn ids() -> (u32, u32) {
    static IDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    // SAFETY: no preconditions.
    *IDS.get_or_init(|| unsafe { (libc::geteuid(), libc::getegid()) })
}

static USERS: Mutex<Option<HashMap<u32, String>>> = Mutex::new(None);
static GROUPS: Mutex<Option<HashMap<u32, String>>> = Mutex::new(None);

/// User name for a UID (cached; empty if unknown).
pub fn user_name(uid: u32) -> String {
    cached(&USERS, uid, |id| {
        let mut buf = vec![0u8; 4096];
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call; the result points into `buf`.
        let rc = unsafe { libc::getpwuid_r(id, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if rc != 0 || out.is_null() {
            return String::new();
        }
        unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned()
    })
}

/// Group name for a GID (cached; empty if unknown).
pub fn group_name(gid: u32) -> String {
    cached(&GROUPS, gid, |id| {
        let mut buf = vec![0u8; 4096];
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out = std::ptr::null_mut();
        // SAFETY: as above.
        let rc = unsafe { libc::getgrgid_r(id, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if rc != 0 || out.is_null() {
            return String::new();
        }
        unsafe { CStr::from_ptr(gr.gr_name) }.to_string_lossy().into_owned()
    })
}

fn cached(map: &Mutex<Option<HashMap<u32, String>>>, id: u32, look: impl Fn(u32) -> String) -> String {
    let mut g = map.lock().unwrap();
    g.get_or_insert_with(HashMap::new).entry(id).or_insert_with(|| look(id)).clone()
}

/// Whether a process with this PID exists on this host. PID 0 and PIDs beyond `pid_t` name no
/// process (a lock file may hold any 32-bit value): `kill` would read 0 as "my process group"
/// and a negative value as another group, and report them alive.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Environment variables that carry repository passwords: children arca starts (hooks,
/// `--stdin-from-command`) do not inherit them.
pub const SECRET_ENV: [&str; 3] = ["ARCA_PASSWORD", "ARCA_NEW_PASSWORD", "ARCA_TO_PASSWORD"];

/// Remove [`SECRET_ENV`] from a child's environment.
pub fn without_secrets(cmd: &mut std::process::Command) {
    for v in SECRET_ENV {
        cmd.env_remove(v);
    }
}

/// Publish `bytes` at `path` whole or not at all: a new hidden temporary file beside it (its own
/// name, `O_EXCL`, not through a symlink, mode `mode`), written, fsynced when `durable`, then
/// renamed over `path`. Readers never see a partial file; the temporary file is removed on
/// failure. For files outside repositories (caches, metrics, generated units).
pub fn write_atomically(path: &std::path::Path, bytes: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.{}.tmp", std::process::id(), now_nanos()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| if durable { f.sync_all() } else { Ok(()) }))
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    #[test]
    fn pids_that_name_no_process_are_not_alive() {
        assert!(super::process_alive(std::process::id()));
        for pid in [0, 1 << 31, u32::MAX] {
            assert!(!super::process_alive(pid), "{pid}");
        }
    }
}
