//! format-spec/12-tree.md — a tree blob: one directory's entries, sorted by name, with metadata and
//! for files the list of content chunks.

use super::from_postcard_canonical;
use crate::error::{Error, Result};
use crate::id::Id;
use serde::{Deserialize, Serialize};

/// Largest tree plaintext accepted.
pub const MAX_TREE_LEN: usize = 256 << 20;
/// Longest entry name, bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target, bytes.
pub const MAX_LINK_TARGET_LEN: usize = 4096;
/// Longest extended attribute name, bytes.
pub const MAX_XATTR_NAME_LEN: usize = 255;
/// Largest extended attribute value, bytes.
pub const MAX_XATTR_VALUE_LEN: usize = 64 * 1024;

/// One chunk of a file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Data blob ID.
    pub id: Id,
    /// Plaintext length of that blob.
    pub len: u32,
}

/// What an entry is, with the type-specific fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A regular file.
    File {
        /// Content length; equals the sum of the chunk lengths.
        size: u64,
        /// Content chunks in order.
        content: Vec<ChunkRef>,
    },
    /// A directory and its tree blob.
    Dir {
        /// The subtree's blob ID.
        subtree: Id,
    },
    /// A symbolic link.
    Symlink {
        /// Target bytes, verbatim.
        target: Vec<u8>,
    },
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice {
        /// Device number.
        rdev: u64,
    },
    /// A block device.
    BlockDevice {
        /// Device number.
        rdev: u64,
    },
    /// A Unix socket (recorded, restored as nothing).
    Socket,
}

/// An extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Name, e.g. `user.comment`.
    pub name: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name: 1–255 bytes, no `/` or NUL, not `.` or `..`.
    pub name: Vec<u8>,
    /// Type and type-specific data.
    pub kind: NodeKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Owner name, empty if unknown.
    pub user: String,
    /// Group name, empty if unknown.
    pub group: String,
    /// Modification time, Unix nanoseconds.
    pub mtime: i64,
    /// Status-change time, Unix nanoseconds.
    pub ctime: i64,
    /// Inode number.
    pub inode: u64,
    /// Device of the containing filesystem.
    pub device: u64,
    /// Hard link count.
    pub links: u64,
    /// Extended attributes, sorted by name, unique.
    pub xattrs: Vec<Xattr>,
}

/// Most entries one tree may have. Checked against the encoded count before any entry is
/// decoded, so that a hostile tree of minimal entries cannot expand 20-fold in memory.
pub const MAX_TREE_NODES: usize = 1 << 21;

/// A directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, strictly ascending by name bytes.
    #[serde(deserialize_with = "bounded_nodes")]
    pub nodes: Vec<Node>,
}

fn bounded_nodes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<Node>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<Node>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "at most {MAX_TREE_NODES} tree entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<Node>, A::Error> {
            let n = seq.size_hint().unwrap_or(0);
            if n > MAX_TREE_NODES {
                return Err(serde::de::Error::custom(format!("{n} entries exceed the limit of {MAX_TREE_NODES}")));
            }
            let mut out = Vec::with_capacity(n.min(4096));
            while let Some(node) = seq.next_element()? {
                out.push(node);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// Check one entry name against the tree rules.
pub fn validate_name(name: &[u8]) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err("name is empty or longer than 255 bytes");
    }
    if name == b"." || name == b".." {
        return Err("name is . or ..");
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err("name contains / or NUL");
    }
    Ok(())
}

impl Node {
    /// A directory node with no metadata (for the virtual root of a snapshot).
    pub fn bare_dir(name: &[u8], subtree: Id) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::Dir { subtree },
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: 0,
            ctime: 0,
            inode: 0,
            device: 0,
            links: 0,
            xattrs: vec![],
        }
    }

    /// The tree of a directory node.
    pub fn subtree(&self) -> Option<Id> {
        match self.kind {
            NodeKind::Dir { subtree } => Some(subtree),
            _ => None,
        }
    }
}

impl Tree {
    /// Encode to the blob plaintext.
    pub fn encode(&self) -> Vec<u8> {
        super::to_postcard(self)
    }

    /// Decode and validate every MUST rule.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Tree> {
        if bytes.len() > MAX_TREE_LEN {
            return Err(Error::integrity(what, "tree too large"));
        }
        let t: Tree = from_postcard_canonical(bytes, what)?;
        t.validate().map_err(|e| Error::integrity(what, e))?;
        Ok(t)
    }

    /// Check every MUST rule of a decoded or about-to-be-written tree.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (i, n) in self.nodes.iter().enumerate() {
            let shown = String::from_utf8_lossy(&n.name);
            validate_name(&n.name).map_err(|e| format!("entry {i} ({shown:?}): {e}"))?;
            if i > 0 && self.nodes[i - 1].name >= n.name {
                return Err(format!("entry {i} ({shown:?}): names not strictly ascending"));
            }
            if n.mode > 0o7777 {
                return Err(format!("entry {shown:?}: mode {:o} has bits beyond 0o7777", n.mode));
            }
            match &n.kind {
                NodeKind::File { size, content } => {
                    let sum: u64 = content.iter().map(|c| c.len as u64).sum();
                    if sum != *size {
                        return Err(format!("file {shown:?}: chunk lengths sum to {sum}, size is {size}"));
                    }
                }
                NodeKind::Symlink { target }
                    if target.is_empty() || target.len() > MAX_LINK_TARGET_LEN || target.contains(&0) =>
                {
                    return Err(format!("symlink {shown:?}: invalid target"));
                }
                _ => {}
            }
            for (j, x) in n.xattrs.iter().enumerate() {
                let bad = x.name.is_empty()
                    || x.name.len() > MAX_XATTR_NAME_LEN
                    || x.name.contains(&0)
                    || x.value.len() > MAX_XATTR_VALUE_LEN
                    || (j > 0 && n.xattrs[j - 1].name >= x.name);
                if bad {
                    return Err(format!("entry {shown:?}: invalid or unsorted extended attribute"));
                }
            }
        }
        Ok(())
    }
}
