//! The metaconfig manager (design.md §5): which configs and serversets a
//! monitor syncs, and the `*.dep` dependencies hosts subscribe to.

mod manager;
mod record;

pub use manager::{
    MetaConfigManager, Subscription, BASE_DEPENDENCY, DEPENDENCY_ROOT, METACONFIG_ROOT,
};
pub use record::{is_dependency, MetaConfig, MetaConfigKind, DEPENDENCY_SUFFIX, SERVERSET_PREFIX};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryServer;
    use crate::{ConfigName, Coordinator, ErrorKind, NodePath};

    fn name(s: &str) -> ConfigName {
        ConfigName::parse(s).unwrap()
    }

    fn manager() -> (Arc<dyn Coordinator>, MetaConfigManager) {
        let coordinator: Arc<dyn Coordinator> = Arc::new(MemoryServer::new().connect());
        (coordinator.clone(), MetaConfigManager::new(coordinator))
    }

    async fn config(m: &MetaConfigManager, n: &str) -> MetaConfig {
        let metaconfig = MetaConfig::config(name(n)).unwrap();
        m.create(&metaconfig).await.unwrap();
        metaconfig
    }

    fn names(metaconfigs: &[MetaConfig]) -> Vec<&str> {
        metaconfigs.iter().map(|m| m.name.as_str()).collect()
    }

    #[tokio::test]
    async fn create_get_list_and_idempotent_create() {
        let (coordinator, m) = manager();
        let c = config(&m, "config.manageddata.spam.blacklist").await;
        m.create(&c).await.unwrap();
        let err = m
            .create(&c.clone().with_max_random_delay_ms(9))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        let s = MetaConfig::serverset("web", "prod").unwrap();
        m.create(&s).await.unwrap();
        assert!(coordinator
            .exists(&NodePath::parse("/discovery/web/prod").unwrap())
            .await
            .unwrap()
            .is_some());
        assert_eq!(m.get(&c.name).await.unwrap(), Some(c.clone()));
        assert_eq!(m.list().await.unwrap(), [c.name.clone(), s.name.clone()]);
    }

    #[tokio::test]
    async fn dependencies_nest_tolerate_cycles_and_include_base() {
        let (_, m) = manager();
        let a = config(&m, "config.a").await;
        let b = config(&m, "config.b").await;
        let base = config(&m, "config.base").await;
        for dep in ["web.dep", "shared.dep", "base.dep"] {
            m.create_dependency(&name(dep)).await.unwrap();
        }
        assert!(m
            .add_to_dependency(&name("web.dep"), &a.name)
            .await
            .unwrap());
        assert!(!m
            .add_to_dependency(&name("web.dep"), &a.name)
            .await
            .unwrap());
        m.add_to_dependency(&name("web.dep"), &name("shared.dep"))
            .await
            .unwrap();
        m.add_to_dependency(&name("shared.dep"), &b.name)
            .await
            .unwrap();
        m.add_to_dependency(&name("shared.dep"), &a.name)
            .await
            .unwrap();
        // A cycle.
        m.add_to_dependency(&name("shared.dep"), &name("web.dep"))
            .await
            .unwrap();
        m.add_to_dependency(&name("base.dep"), &base.name)
            .await
            .unwrap();

        let sub = m.resolve(&name("web.dep")).await.unwrap();
        assert_eq!(
            names(&sub.metaconfigs),
            ["config.a", "config.b", "config.base"]
        );
        assert_eq!(
            sub.dependencies,
            [name("base.dep"), name("shared.dep"), name("web.dep")]
        );
        assert!(sub.missing.is_empty());
        assert_eq!(
            m.members(&name("shared.dep")).await.unwrap(),
            [a.name.clone(), b.name.clone(), name("web.dep")]
        );

        assert!(m
            .remove_from_dependency(&name("web.dep"), &name("shared.dep"))
            .await
            .unwrap());
        let sub = m.resolve(&name("web.dep")).await.unwrap();
        assert_eq!(names(&sub.metaconfigs), ["config.a", "config.base"]);
    }

    #[tokio::test]
    async fn adding_to_or_from_something_missing_changes_nothing() {
        let (coordinator, m) = manager();
        let a = config(&m, "config.a").await;
        let err = m
            .add_to_dependency(&name("nope.dep"), &a.name)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("nope.dep"), "{err}");
        assert!(
            coordinator
                .exists(&NodePath::parse("/metaconfig/dependency/nope.dep").unwrap())
                .await
                .unwrap()
                .is_none(),
            "a missing dependency is not created as a side effect"
        );
        m.create_dependency(&name("web.dep")).await.unwrap();
        let err = m
            .add_to_dependency(&name("web.dep"), &name("config.ghost"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(m.members(&name("web.dep")).await.unwrap().is_empty());
        assert_eq!(
            m.resolve(&name("other.dep")).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let err = m.create_dependency(&name("config.a")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn removing_a_metaconfig_or_dependency_removes_its_references() {
        let (_, m) = manager();
        let a = config(&m, "config.a").await;
        for dep in ["inner.dep", "web.dep", "api.dep"] {
            m.create_dependency(&name(dep)).await.unwrap();
            if dep != "inner.dep" {
                m.add_to_dependency(&name(dep), &a.name).await.unwrap();
                m.add_to_dependency(&name(dep), &name("inner.dep"))
                    .await
                    .unwrap();
            }
        }
        assert!(m.remove(&a.name).await.unwrap());
        assert!(!m.remove(&a.name).await.unwrap());
        assert_eq!(m.get(&a.name).await.unwrap(), None);
        assert_eq!(
            m.members(&name("web.dep")).await.unwrap(),
            [name("inner.dep")]
        );
        assert!(m.remove_dependency(&name("inner.dep")).await.unwrap());
        assert!(m.members(&name("api.dep")).await.unwrap().is_empty());
        assert_eq!(
            m.list_dependencies().await.unwrap(),
            [name("api.dep"), name("web.dep")]
        );
    }

    #[tokio::test]
    async fn a_member_removed_behind_the_managers_back_is_reported_missing() {
        let (coordinator, m) = manager();
        let a = config(&m, "config.a").await;
        m.create_dependency(&name("web.dep")).await.unwrap();
        m.add_to_dependency(&name("web.dep"), &a.name)
            .await
            .unwrap();
        coordinator
            .delete(&MetaConfigManager::record_path(&a.name).unwrap(), None)
            .await
            .unwrap();
        let sub = m.resolve(&name("web.dep")).await.unwrap();
        assert!(sub.metaconfigs.is_empty());
        assert_eq!(sub.missing, [a.name]);
    }
}
