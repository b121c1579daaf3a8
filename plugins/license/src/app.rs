//! App licenses: create, get, list, update, enable/disable, delete.

use serde_json::json;
use syshost_plugin_api::{BatchResult, CallContext, PluginError, Store};

use crate::util::{
    check_slug, clean_description, clean_name, clean_url, name_index_key, name_order, random_id,
    Page,
};
use crate::{
    app_key, busy, decode, load, user_key, AppLicense, CreateAppRequest, DeleteResponse, IdRequest,
    LicenseSystem, ListRequest, ListResponse, SetEnabledRequest, UpdateAppRequest, APP_NAME_PREFIX,
    APP_PREFIX, MAX_ATTEMPTS,
};

fn not_found(id: &str) -> PluginError {
    PluginError::not_found(format!("app license '{id}' does not exist"))
        .with_details(json!({ "field": "id" }))
}

/// Reads an app license and its stored bytes.
fn load_app(store: &Store, id: &str) -> Result<Option<(AppLicense, Vec<u8>)>, PluginError> {
    load(store, &app_key(id))
}

impl LicenseSystem {
    pub(crate) fn create_app_license(
        &self,
        req: CreateAppRequest,
        _: &CallContext,
    ) -> Result<AppLicense, PluginError> {
        let id = match req.id {
            Some(id) => {
                check_slug("id", &id)?;
                id
            }
            None => random_id()?,
        };
        let now = self.host.now_unix_ms();
        let license = AppLicense {
            name: clean_name("name", &req.name)?,
            description: clean_description("description", &req.description)?,
            url: clean_url("url", &req.url)?,
            enabled: req.enabled,
            id,
            created_at: now,
            updated_at: now,
        };
        let key = app_key(&license.id);
        let result = self
            .host
            .store()
            .batch()
            .expect_absent(&key)
            .expect_absent(user_key(&license.id))
            .put_json(&key, &license)?
            .put(
                name_index_key(APP_NAME_PREFIX, &license.name, &license.id),
                &license.id,
            )
            .commit()?;
        match result {
            BatchResult::Committed => {}
            BatchResult::PreconditionFailed(0) => {
                return Err(PluginError::conflict(format!(
                    "app license '{}' already exists",
                    license.id
                ))
                .with_details(json!({ "field": "id" })))
            }
            BatchResult::PreconditionFailed(_) => {
                return Err(PluginError::conflict(format!(
                    "'{}' is already the id of a user license; app and user licenses share one id space",
                    license.id
                ))
                .with_details(json!({ "field": "id" })))
            }
        }
        self.publish_updated(&license)?;
        Ok(license)
    }

    pub(crate) fn get_app_license(
        &self,
        req: IdRequest,
        _: &CallContext,
    ) -> Result<AppLicense, PluginError> {
        check_slug("id", &req.id)?;
        load_app(&self.host.store(), &req.id)?
            .map(|(license, _)| license)
            .ok_or_else(|| not_found(&req.id))
    }

    pub(crate) fn list_app_licenses(
        &self,
        req: ListRequest,
        _: &CallContext,
    ) -> Result<ListResponse<AppLicense>, PluginError> {
        let page = Page::new(req.search, req.offset, req.limit)?;
        let store = self.host.store();
        if page.search.is_none() {
            let index = store.scan_prefix(APP_NAME_PREFIX)?;
            let total = index.len() as u64;
            let mut items = Vec::new();
            for (_, id) in index.iter().skip(page.offset).take(page.limit) {
                if let Some((license, _)) = load_app(&store, &String::from_utf8_lossy(id))? {
                    items.push(license);
                }
            }
            return Ok(ListResponse { items, total });
        }
        let mut matching = Vec::new();
        for (key, bytes) in store.scan_prefix(APP_PREFIX)? {
            let license: AppLicense = decode(&key, &bytes)?;
            if page.matches(&[&license.id, &license.name, &license.description]) {
                matching.push(license);
            }
        }
        matching.sort_by(|a, b| name_order(&a.name, &a.id, &b.name, &b.id));
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(page.offset)
            .take(page.limit)
            .collect();
        Ok(ListResponse { items, total })
    }

    pub(crate) fn update_app_license(
        &self,
        req: UpdateAppRequest,
        _: &CallContext,
    ) -> Result<AppLicense, PluginError> {
        check_slug("id", &req.id)?;
        let name = req
            .name
            .as_deref()
            .map(|n| clean_name("name", n))
            .transpose()?;
        let description = req
            .description
            .as_deref()
            .map(|d| clean_description("description", d))
            .transpose()?;
        let url = req
            .url
            .as_deref()
            .map(|u| clean_url("url", u))
            .transpose()?;
        self.change_app(&req.id, |license| {
            if let Some(name) = &name {
                license.name = name.clone();
            }
            if let Some(description) = &description {
                license.description = description.clone();
            }
            if let Some(url) = &url {
                license.url = url.clone();
            }
        })
    }

    pub(crate) fn set_app_license_enabled(
        &self,
        req: SetEnabledRequest,
        _: &CallContext,
    ) -> Result<AppLicense, PluginError> {
        check_slug("id", &req.id)?;
        self.change_app(&req.id, |license| license.enabled = req.enabled)
    }

    pub(crate) fn delete_app_license(
        &self,
        req: IdRequest,
        _: &CallContext,
    ) -> Result<DeleteResponse, PluginError> {
        check_slug("id", &req.id)?;
        let store = self.host.store();
        let key = app_key(&req.id);
        for _ in 0..MAX_ATTEMPTS {
            let (old, old_bytes) = load_app(&store, &req.id)?.ok_or_else(|| not_found(&req.id))?;
            let result = store
                .batch()
                .expect(&key, &old_bytes)
                .delete(&key)
                .delete(name_index_key(APP_NAME_PREFIX, &old.name, &old.id))
                .commit()?;
            if result == BatchResult::Committed {
                self.host
                    .publish("license.deleted", &json!({ "id": old.id, "kind": "app" }))?;
                return Ok(DeleteResponse { deleted: true });
            }
            std::thread::yield_now();
        }
        Err(busy(&format!("app license '{}'", req.id)))
    }

    /// Applies `change` to an app license with optimistic concurrency; an
    /// unchanged record is neither written nor announced.
    fn change_app(
        &self,
        id: &str,
        change: impl Fn(&mut AppLicense),
    ) -> Result<AppLicense, PluginError> {
        let store = self.host.store();
        let key = app_key(id);
        for _ in 0..MAX_ATTEMPTS {
            let (old, old_bytes) = load_app(&store, id)?.ok_or_else(|| not_found(id))?;
            let mut new = old.clone();
            change(&mut new);
            if new == old {
                return Ok(old);
            }
            new.updated_at = self.host.now_unix_ms().max(old.updated_at);
            let result = store
                .batch()
                .expect(&key, &old_bytes)
                .delete(name_index_key(APP_NAME_PREFIX, &old.name, &old.id))
                .put(name_index_key(APP_NAME_PREFIX, &new.name, &new.id), &new.id)
                .put_json(&key, &new)?
                .commit()?;
            if result == BatchResult::Committed {
                self.publish_updated(&new)?;
                return Ok(new);
            }
            std::thread::yield_now();
        }
        Err(busy(&format!("app license '{id}'")))
    }

    fn publish_updated(&self, license: &AppLicense) -> Result<(), PluginError> {
        self.host.publish(
            "license.updated",
            &json!({ "license": license, "kind": "app" }),
        )
    }
}
