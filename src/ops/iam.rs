//! `arca generate s3-policy`: the AWS IAM policy for each role a host plays against an S3
//! repository, so that credentials on a backed-up host cannot destroy what they wrote
//! (issue 22; README "Ransomware-resistant setup: storage side").
//!
//! - `backup`: list, read, write anything; delete only under `locks/` (a lock is removed when
//!   its command ends). IAM cannot stop a PutObject from replacing an existing key (arca's writes
//!   do not send `If-None-Match`, so a policy requiring it would refuse arca too); on a bucket
//!   with Object Lock the replaced version stays, retained, so an overwrite is recoverable.
//! - `restore`: list and read; write and delete only `locks/` (readers take shared locks so
//!   that a prune waits for them) and write `journal/` (the restore's record).
//! - `admin`: everything prune, init and retention need: DeleteObject and DeleteObjectVersion,
//!   PutObjectRetention, the bucket's Object Lock configuration, CreateBucket. Not
//!   `s3:BypassGovernanceRetention`: nothing arca does shortens a retention.
//!
//! Every role may read retention (`s3:GetObjectRetention`, the bucket's Object Lock
//! configuration) so that `check` can report objects the storage does not protect. The
//! non-admin roles also carry an explicit Deny of every destructive action outside `locks/`,
//! so that another policy attached to the same identity cannot widen them by accident.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{json, Value};

/// A role a host plays against the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A backed-up host: writes new data, removes only its locks.
    Backup,
    /// A host that only reads (restore, check, dump, mount).
    Restore,
    /// The maintenance host: prune, forget, init, retention.
    Admin,
}

impl Role {
    /// `backup`, `restore` or `admin`.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "backup" => Ok(Role::Backup),
            "restore" => Ok(Role::Restore),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::InvalidArgument(format!("--role {s:?}: backup, restore or admin"))),
        }
    }
}

/// What to generate a policy for.
#[derive(Clone, Debug)]
pub struct PolicyRequest {
    /// The role.
    pub role: Role,
    /// The bucket.
    pub bucket: String,
    /// The repository's prefix in the bucket (empty: the whole bucket).
    pub prefix: String,
}

/// Actions on the bucket itself every role needs: listing, and reading the Object Lock
/// configuration (prune and check ask for it).
const BUCKET_READ: [&str; 3] = ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketObjectLockConfiguration"];
/// Reading objects and their retention.
const OBJECT_READ: [&str; 2] = ["s3:GetObject", "s3:GetObjectRetention"];
/// What the admin role adds on the bucket: making it (init) and its default retention.
const BUCKET_ADMIN: [&str; 5] = [
    "s3:CreateBucket",
    "s3:PutBucketObjectLockConfiguration",
    "s3:GetBucketVersioning",
    "s3:ListBucketVersions",
    "s3:GetLifecycleConfiguration",
];
/// What the admin role adds on objects: destroying versions (prune) and extending retention.
const OBJECT_ADMIN: [&str; 6] = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetObjectVersion",
    "s3:PutObjectRetention",
    "s3:GetObjectRetention",
];
/// Destructive actions the backup and restore roles are denied outside `locks/`.
const DESTRUCTIVE: [&str; 4] =
    ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:BypassGovernanceRetention"];
/// Destructive actions on the bucket, denied to backup and restore.
const BUCKET_DESTRUCTIVE: [&str; 5] = [
    "s3:DeleteBucket",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketPolicy",
];

/// The IAM policy document for `req`.
pub fn s3_policy(req: &PolicyRequest) -> Result<Value> {
    check_bucket(&req.bucket)?;
    let prefix = clean_prefix(&req.prefix)?;
    let bucket_arn = format!("arn:aws:s3:::{}", req.bucket);
    let under = |dir: &str| format!("{bucket_arn}/{prefix}{dir}*");
    let mut statements = bucket_statements(&bucket_arn, &prefix).to_vec();
    match req.role {
        Role::Backup => {
            statements.push(allow(
                "ReadAndWriteRepository",
                &[&OBJECT_READ[..], &["s3:PutObject"]].concat(),
                json!(under("")),
            ));
            statements.push(allow("RemoveOwnLocks", &["s3:DeleteObject"], json!(under("locks/"))));
            statements.extend(denials(&bucket_arn, &under("locks/")));
        }
        Role::Restore => {
            statements.push(allow("ReadRepository", &OBJECT_READ, json!(under(""))));
            statements.push(allow("TakeSharedLocks", &["s3:PutObject", "s3:DeleteObject"], json!(under("locks/"))));
            statements.push(allow("RecordInJournal", &["s3:PutObject"], json!(under("journal/"))));
            statements.extend(denials(&bucket_arn, &under("locks/")));
        }
        Role::Admin => {
            statements.push(allow("AdministerBucket", &BUCKET_ADMIN, json!(bucket_arn)));
            statements.push(allow(
                "AdministerRepository",
                &[&OBJECT_READ[..1], &OBJECT_ADMIN].concat(),
                json!(under("")),
            ));
        }
    }
    Ok(json!({ "Version": "2012-10-17", "Statement": statements }))
}

/// Listing (only under the prefix when there is one), and the bucket's location and Object
/// Lock settings.
fn bucket_statements(bucket_arn: &str, prefix: &str) -> [Value; 2] {
    let mut list = allow("ListRepository", &BUCKET_READ[..1], json!(bucket_arn));
    if !prefix.is_empty() {
        list["Condition"] =
            json!({ "StringLike": { "s3:prefix": [prefix.trim_end_matches('/'), format!("{prefix}*")] } });
    }
    [list, allow("ReadBucketSettings", &BUCKET_READ[1..], json!(bucket_arn))]
}

fn allow(sid: &str, actions: &[&str], resource: Value) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource })
}

/// Explicit denials: destroying objects anywhere but `locks/`, and changing the bucket.
fn denials(bucket_arn: &str, locks: &str) -> [Value; 2] {
    [
        json!({ "Sid": "DenyDestroyingData", "Effect": "Deny", "Action": DESTRUCTIVE, "NotResource": locks }),
        json!({ "Sid": "DenyChangingTheBucket", "Effect": "Deny", "Action": BUCKET_DESTRUCTIVE, "Resource": bucket_arn }),
    ]
}

/// S3 bucket names: 3–63 lowercase letters, digits, `.` and `-`.
fn check_bucket(b: &str) -> Result<()> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    if ok {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!("--bucket {b:?}: an S3 bucket name (3–63 lowercase letters, digits, '.', '-')")))
}

/// The prefix as the resource ARNs use it: `team/repo/`, or empty.
fn clean_prefix(p: &str) -> Result<String> {
    let p = p.trim_matches('/');
    if p.contains(['*', '?', '$']) {
        return Err(Error::InvalidArgument(format!("--prefix {p:?}: IAM would read `*`, `?` and `$` as patterns")));
    }
    Ok(if p.is_empty() { String::new() } else { format!("{p}/") })
}
