//! Which keys a user may read or write: the union of the key permissions of
//! the user's roles, merged once per change of users or roles (as etcd's range
//! permission cache) so a check is a binary search.
//!
//! Ranges follow etcd's rules: an empty `range_end` is the single key, a
//! `range_end` of `\0` means "to the end of the key space", and a permission
//! on the key `\0` up to `\0` covers every key.

use std::collections::BTreeMap;

use ballast_proto::authpb::{permission::Type as PermType, Role, User};

/// The role whose holders may do anything.
pub const ROOT_ROLE: &str = "root";

/// The end of a key interval.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// Up to, not including, this key.
    Key(Vec<u8>),
    /// To the end of the key space.
    Open,
}

/// Disjoint, sorted, non-touching intervals `[begin, end)`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Intervals(Vec<(Vec<u8>, End)>);

impl Intervals {
    fn from_unsorted(mut v: Vec<(Vec<u8>, End)>) -> Self {
        v.sort();
        let mut merged: Vec<(Vec<u8>, End)> = Vec::with_capacity(v.len());
        for (begin, end) in v {
            if let Some((_, last_end)) = merged.last_mut() {
                let touches = match last_end {
                    End::Open => true,
                    End::Key(k) => *k >= begin,
                };
                if touches {
                    if end > *last_end {
                        *last_end = end;
                    }
                    continue;
                }
            }
            merged.push((begin, end));
        }
        Intervals(merged)
    }

    /// The interval that starts at or before `key`, if any.
    fn at(&self, key: &[u8]) -> Option<&(Vec<u8>, End)> {
        let i = self.0.partition_point(|(b, _)| b.as_slice() <= key);
        i.checked_sub(1).map(|i| &self.0[i])
    }

    fn covers_key(&self, key: &[u8]) -> bool {
        self.at(key).is_some_and(|(_, end)| match end {
            End::Open => true,
            End::Key(e) => key < e.as_slice(),
        })
    }

    /// Whether `[key, end)` lies inside the union.
    fn covers_range(&self, key: &[u8], end: &End) -> bool {
        self.at(key).is_some_and(|(_, have)| have >= end)
    }
}

/// A user's merged permissions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPerms {
    root: bool,
    read: Intervals,
    write: Intervals,
}

/// What a request wants to do with its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl UserPerms {
    pub fn of(user: &User, roles: &BTreeMap<String, Role>) -> UserPerms {
        let mut read = Vec::new();
        let mut write = Vec::new();
        let mut root = false;
        for name in &user.roles {
            if name == ROOT_ROLE {
                root = true;
            }
            let Some(role) = roles.get(name) else {
                continue;
            };
            for p in &role.key_permission {
                let end = if p.range_end.is_empty() {
                    let mut next = p.key.clone();
                    next.push(0);
                    End::Key(next)
                } else if p.range_end == [0] {
                    End::Open
                } else {
                    End::Key(p.range_end.clone())
                };
                let iv = (p.key.clone(), end);
                match PermType::try_from(p.perm_type) {
                    Ok(PermType::Read) => read.push(iv),
                    Ok(PermType::Write) => write.push(iv),
                    Ok(PermType::Readwrite) => {
                        read.push(iv.clone());
                        write.push(iv);
                    }
                    Err(_) => {}
                }
            }
        }
        UserPerms {
            root,
            read: Intervals::from_unsorted(read),
            write: Intervals::from_unsorted(write),
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Whether the user may `access` the key, or the range `[key, range_end)`.
    pub fn allows(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        if self.root {
            return true;
        }
        let set = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            set.covers_key(key)
        } else if range_end == [0] {
            set.covers_range(key, &End::Open)
        } else {
            set.covers_range(key, &End::Key(range_end.to_vec()))
        }
    }
}

/// etcd's rule for a permission's range: a key, then no end, the open end, or
/// an end after the key.
pub fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    range_end.is_empty() || range_end == [0] || key < range_end
}

#[cfg(test)]
mod tests {
    use ballast_proto::authpb::Permission;

    use super::*;

    fn role(name: &str, perms: &[(PermType, &str, &str)]) -> (String, Role) {
        let key_permission = perms
            .iter()
            .map(|(t, k, e)| Permission {
                perm_type: *t as i32,
                key: k.as_bytes().to_vec(),
                range_end: e.as_bytes().to_vec(),
            })
            .collect();
        (
            name.to_string(),
            Role {
                name: name.as_bytes().to_vec(),
                key_permission,
            },
        )
    }

    fn user(roles: &[&str]) -> User {
        User {
            name: b"u".to_vec(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn checks_follow_etcds_range_rules() {
        use Access::*;
        let roles: BTreeMap<_, _> = [
            role("r-name", &[(PermType::Read, "/name", "")]),
            role("rw-app", &[(PermType::Readwrite, "/app/", "/app0")]),
            role(
                "w-logs",
                &[
                    (PermType::Write, "/logs/a", "/logs/m"),
                    (PermType::Write, "/logs/m", "/logs/z"),
                ],
            ),
            role("r-tail", &[(PermType::Read, "/z", "\0")]),
        ]
        .into_iter()
        .collect();
        let p = UserPerms::of(&user(&["r-name", "rw-app", "w-logs", "r-tail"]), &roles);
        // (access, key, range_end, allowed)
        let table: &[(Access, &str, &str, bool)] = &[
            (Read, "/name", "", true),
            (Write, "/name", "", false),
            (Read, "/name2", "", false),
            (Read, "/name", "/name\0", true),
            (Read, "/name", "/nameA", false),
            (Read, "/app/x", "", true),
            (Write, "/app/x", "", true),
            (Read, "/app/", "/app0", true),
            (Read, "/app/", "/app1", false),
            (Read, "/ap", "/app0", false),
            // Two adjacent permissions cover the range across them.
            (Write, "/logs/b", "/logs/y", true),
            (Write, "/logs/b", "/logs/zz", false),
            (Read, "/logs/b", "", false),
            // An open end covers everything after its key, and open-ended requests.
            (Read, "/zebra", "", true),
            (Read, "/z", "\0", true),
            (Read, "/y", "\0", false),
            (Write, "/zebra", "", false),
        ];
        for (access, key, end, want) in table {
            assert_eq!(
                p.allows(*access, key.as_bytes(), end.as_bytes()),
                *want,
                "{access:?} {key:?}..{end:?}"
            );
        }
    }

    #[test]
    fn the_root_role_allows_everything_and_unknown_roles_nothing() {
        let roles = BTreeMap::new();
        let root = UserPerms::of(&user(&["root"]), &roles);
        assert!(root.is_root());
        assert!(root.allows(Access::Write, b"anything", b"\0"));
        let nobody = UserPerms::of(&user(&["gone"]), &roles);
        assert!(!nobody.allows(Access::Read, b"a", b""));
    }

    #[test]
    fn the_whole_key_space_permission() {
        let roles: BTreeMap<_, _> = [role("all", &[(PermType::Read, "\0", "\0")])]
            .into_iter()
            .collect();
        let p = UserPerms::of(&user(&["all"]), &roles);
        assert!(p.allows(Access::Read, b"\0", b"\0"));
        assert!(p.allows(Access::Read, b"k", b""));
        assert!(!p.allows(Access::Write, b"k", b""));
    }

    #[test]
    fn permission_ranges_are_validated_as_etcd_does() {
        assert!(valid_permission_range(b"a", b""));
        assert!(valid_permission_range(b"a", b"b"));
        assert!(valid_permission_range(b"a", b"\0"));
        assert!(valid_permission_range(b"\0", b"\0"));
        assert!(!valid_permission_range(b"", b""));
        assert!(!valid_permission_range(b"b", b"a"));
        assert!(!valid_permission_range(b"a", b"a"));
    }
}
