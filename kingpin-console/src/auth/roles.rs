//! Roles by name prefix: what a user may do with a config, environment,
//! decider flag or serverset.

use std::fmt;

/// What a user may do with a name, each role including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read it: browse, search, history, diffs, hosts.
    Viewer,
    /// Change it (or propose a change where approvals are required), and
    /// roll it back.
    Editor,
    /// Approve and publish other users' proposals.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    /// Parses `viewer`, `editor`, `approver` or `admin`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Approver => "approver",
            Role::Admin => "admin",
        })
    }
}

/// A role given to some users on every name under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// User names; `*` is every signed-in user.
    pub users: Vec<String>,
    /// Config name components (`config.manageddata.spam`); empty for
    /// every name.
    pub prefix: String,
    /// The role.
    pub role: Role,
}

/// Whether `name` is `prefix` or under it, on component boundaries:
/// `config.spam` covers `config.spam.list` but not `config.spammer`.
pub fn covers(prefix: &str, name: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Every grant, asked per user and name.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    grants: Vec<Grant>,
    // `kingpin dev`: this user is admin everywhere.
    local_admin: Option<String>,
}

impl Grants {
    /// The grants of the settings.
    pub fn new(grants: Vec<Grant>) -> Self {
        Grants {
            grants,
            local_admin: None,
        }
    }

    /// Makes `user` admin on everything.
    pub fn with_local_admin(mut self, user: &str) -> Self {
        self.local_admin = Some(user.to_owned());
        self
    }

    /// The highest role `user` has on `name`, if any.
    pub fn role(&self, user: &str, name: &str) -> Option<Role> {
        if self.local_admin.as_deref() == Some(user) {
            return Some(Role::Admin);
        }
        self.grants
            .iter()
            .filter(|g| g.users.iter().any(|u| u == "*" || u == user))
            .filter(|g| covers(&g.prefix, name))
            .map(|g| g.role)
            .max()
    }

    /// Whether `user` has at least `role` on `name`.
    pub fn allows(&self, user: &str, name: &str, role: Role) -> bool {
        self.role(user, name).is_some_and(|r| r >= role)
    }

    /// The highest role `user` has anywhere: whether to show a link at
    /// all (the pages behind it filter by name).
    pub fn best_role(&self, user: &str) -> Option<Role> {
        if self.local_admin.as_deref() == Some(user) {
            return Some(Role::Admin);
        }
        self.grants
            .iter()
            .filter(|g| g.users.iter().any(|u| u == "*" || u == user))
            .map(|g| g.role)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(users: &[&str], prefix: &str, role: Role) -> Grant {
        Grant {
            users: users.iter().map(|u| u.to_string()).collect(),
            prefix: prefix.into(),
            role,
        }
    }

    #[test]
    fn the_highest_matching_grant_wins_on_component_boundaries() {
        let grants = Grants::new(vec![
            grant(&["*"], "", Role::Viewer),
            grant(&["alice"], "config.spam", Role::Editor),
            grant(&["bob"], "config", Role::Approver),
        ]);
        assert_eq!(grants.role("alice", "config.spam.list"), Some(Role::Editor));
        assert_eq!(grants.role("alice", "config.spam"), Some(Role::Editor));
        assert_eq!(grants.role("alice", "config.spammer"), Some(Role::Viewer));
        assert_eq!(grants.role("bob", "config.spam.list"), Some(Role::Approver));
        assert_eq!(grants.role("carol", "anything"), Some(Role::Viewer));
        assert!(!grants.allows("carol", "config.spam.list", Role::Editor));
        assert_eq!(Grants::new(vec![]).role("x", "config"), None);
        assert_eq!(
            Grants::default().with_local_admin("dev").role("dev", "a"),
            Some(Role::Admin)
        );
    }
}
