//! User licenses and their seats: create, get, list, update, delete, assign,
//! revoke, seats, assignees, licenses_of, and the `user.deleted` clean-up.

use serde_json::json;
use syshost_plugin_api::{BatchResult, CallContext, PluginError, Store};

use crate::util::{
    check_slug, clean_description, clean_name, name_index_key, name_order, random_id, Page,
};
use crate::{
    app_key, busy, counter_key, decode, expect_state, holder_key, holder_prefix, load, seat_key,
    seat_prefix, user_key, AssignResponse, AssigneesRequest, CreateUserRequest, DeleteResponse,
    IdRequest, LicenseSystem, LicensesOfRequest, LicensesOfResponse, ListRequest, ListResponse,
    RevokeResponse, SeatCounter, SeatInfo, SeatRequest, SeatsRequest, SeatsResponse,
    UpdateUserRequest, UserLicense, UserLicenseView, MAX_ATTEMPTS, USER_NAME_PREFIX, USER_PREFIX,
};

fn not_found(field: &str, id: &str) -> PluginError {
    PluginError::not_found(format!("user license '{id}' does not exist"))
        .with_details(json!({ "field": field }))
}

/// Reads a user license and its stored bytes.
fn load_user(store: &Store, id: &str) -> Result<Option<(UserLicense, Vec<u8>)>, PluginError> {
    load(store, &user_key(id))
}

/// Reads the seat counter of a license and its stored bytes (`None` when
/// the key is absent, which only a license that no longer exists has).
fn load_counter(store: &Store, id: &str) -> Result<(SeatCounter, Option<Vec<u8>>), PluginError> {
    match load::<SeatCounter>(store, &counter_key(id))? {
        Some((counter, bytes)) => Ok((counter, Some(bytes))),
        None => Ok((SeatCounter::default(), None)),
    }
}

fn encode_counter(counter: SeatCounter) -> Result<Vec<u8>, PluginError> {
    Ok(serde_json::to_vec(&counter)?)
}

/// "license 'Pro' (pro)", for messages.
fn describe(license: &UserLicense) -> String {
    format!("license '{}' ({})", license.name, license.id)
}

impl LicenseSystem {
    pub(crate) fn create_user_license(
        &self,
        req: CreateUserRequest,
        _: &CallContext,
    ) -> Result<UserLicenseView, PluginError> {
        let id = match req.id {
            Some(id) => {
                check_slug("id", &id)?;
                id
            }
            None => random_id()?,
        };
        let now = self.host.now_unix_ms();
        let license = UserLicense {
            name: clean_name("name", &req.name)?,
            description: clean_description("description", &req.description)?,
            max_users: req.max_users,
            id,
            created_at: now,
            updated_at: now,
        };
        let key = user_key(&license.id);
        let result = self
            .host
            .store()
            .batch()
            .expect_absent(&key)
            .expect_absent(app_key(&license.id))
            .put_json(&key, &license)?
            .put(
                counter_key(&license.id),
                encode_counter(SeatCounter::default())?,
            )
            .put(
                name_index_key(USER_NAME_PREFIX, &license.name, &license.id),
                &license.id,
            )
            .commit()?;
        match result {
            BatchResult::Committed => {}
            BatchResult::PreconditionFailed(0) => {
                return Err(PluginError::conflict(format!(
                    "user license '{}' already exists",
                    license.id
                ))
                .with_details(json!({ "field": "id" })))
            }
            BatchResult::PreconditionFailed(_) => {
                return Err(PluginError::conflict(format!(
                    "'{}' is already the id of an app license; app and user licenses share one id space",
                    license.id
                ))
                .with_details(json!({ "field": "id" })))
            }
        }
        let view = UserLicenseView { license, used: 0 };
        self.publish_user_updated(&view)?;
        Ok(view)
    }

    pub(crate) fn get_user_license(
        &self,
        req: IdRequest,
        _: &CallContext,
    ) -> Result<UserLicenseView, PluginError> {
        check_slug("id", &req.id)?;
        let store = self.host.store();
        let (license, _) = load_user(&store, &req.id)?.ok_or_else(|| not_found("id", &req.id))?;
        let (counter, _) = load_counter(&store, &req.id)?;
        Ok(UserLicenseView {
            license,
            used: counter.used,
        })
    }

    pub(crate) fn list_user_licenses(
        &self,
        req: ListRequest,
        _: &CallContext,
    ) -> Result<ListResponse<UserLicenseView>, PluginError> {
        let page = Page::new(req.search, req.offset, req.limit)?;
        let store = self.host.store();
        let (licenses, total) = self.user_licenses_page(&store, &page)?;
        let mut items = Vec::with_capacity(licenses.len());
        for license in licenses {
            let (counter, _) = load_counter(&store, &license.id)?;
            items.push(UserLicenseView {
                license,
                used: counter.used,
            });
        }
        Ok(ListResponse { items, total })
    }

    /// One page of user licenses by name then id, and the number of matches.
    fn user_licenses_page(
        &self,
        store: &Store,
        page: &Page,
    ) -> Result<(Vec<UserLicense>, u64), PluginError> {
        if page.search.is_none() {
            let index = store.scan_prefix(USER_NAME_PREFIX)?;
            let total = index.len() as u64;
            let mut items = Vec::new();
            for (_, id) in index.iter().skip(page.offset).take(page.limit) {
                if let Some((license, _)) = load_user(store, &String::from_utf8_lossy(id))? {
                    items.push(license);
                }
            }
            return Ok((items, total));
        }
        let mut matching = Vec::new();
        for (key, bytes) in store.scan_prefix(USER_PREFIX)? {
            let license: UserLicense = decode(&key, &bytes)?;
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
        Ok((items, total))
    }

    pub(crate) fn update_user_license(
        &self,
        req: UpdateUserRequest,
        _: &CallContext,
    ) -> Result<UserLicenseView, PluginError> {
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
        let store = self.host.store();
        let key = user_key(&req.id);
        for _ in 0..MAX_ATTEMPTS {
            let (old, old_bytes) =
                load_user(&store, &req.id)?.ok_or_else(|| not_found("id", &req.id))?;
            let (counter, counter_bytes) = load_counter(&store, &req.id)?;
            let mut new = old.clone();
            if let Some(name) = &name {
                new.name = name.clone();
            }
            if let Some(description) = &description {
                new.description = description.clone();
            }
            if let Some(max_users) = req.max_users {
                if max_users != 0 && max_users < counter.used {
                    return Err(PluginError::conflict(format!(
                        "cannot lower max_users of {} to {max_users}: {} seats are in use; revoke {} of them first",
                        describe(&old),
                        counter.used,
                        counter.used - max_users
                    ))
                    .with_details(json!({
                        "field": "max_users",
                        "max_users": max_users,
                        "used": counter.used,
                    })));
                }
                new.max_users = max_users;
            }
            if new == old {
                return Ok(UserLicenseView {
                    license: old,
                    used: counter.used,
                });
            }
            new.updated_at = self.host.now_unix_ms().max(old.updated_at);
            // Expecting the counter too: a seat assigned meanwhile makes
            // this batch fail, so the check above is never stale.
            let batch = store.batch().expect(&key, &old_bytes);
            let result = expect_state(batch, &counter_key(&req.id), counter_bytes.as_deref())
                .delete(name_index_key(USER_NAME_PREFIX, &old.name, &old.id))
                .put(
                    name_index_key(USER_NAME_PREFIX, &new.name, &new.id),
                    &new.id,
                )
                .put_json(&key, &new)?
                .commit()?;
            if result == BatchResult::Committed {
                let view = UserLicenseView {
                    license: new,
                    used: counter.used,
                };
                self.publish_user_updated(&view)?;
                return Ok(view);
            }
            std::thread::yield_now();
        }
        Err(busy(&format!("user license '{}'", req.id)))
    }

    pub(crate) fn delete_user_license(
        &self,
        req: IdRequest,
        _: &CallContext,
    ) -> Result<DeleteResponse, PluginError> {
        check_slug("id", &req.id)?;
        let store = self.host.store();
        let key = user_key(&req.id);
        let counter = counter_key(&req.id);
        let prefix = seat_prefix(&req.id);
        for _ in 0..MAX_ATTEMPTS {
            let (old, old_bytes) =
                load_user(&store, &req.id)?.ok_or_else(|| not_found("id", &req.id))?;
            let (_, counter_bytes) = load_counter(&store, &req.id)?;
            let seats = store.scan_prefix(&prefix)?;
            // The counter's rev changes with every seat change, so if it is
            // unchanged at commit, `seats` is exactly the set to remove.
            let mut batch = expect_state(
                store.batch().expect(&key, &old_bytes),
                &counter,
                counter_bytes.as_deref(),
            )
            .delete(&key)
            .delete(&counter)
            .delete(name_index_key(USER_NAME_PREFIX, &old.name, &old.id));
            for (seat, _) in &seats {
                let user_id = String::from_utf8_lossy(&seat[prefix.len()..]).into_owned();
                batch = batch.delete(seat).delete(holder_key(&user_id, &old.id));
            }
            if batch.commit()? == BatchResult::Committed {
                self.host
                    .publish("license.deleted", &json!({ "id": old.id, "kind": "user" }))?;
                return Ok(DeleteResponse { deleted: true });
            }
            std::thread::yield_now();
        }
        Err(busy(&format!("user license '{}'", req.id)))
    }

    pub(crate) fn assign(
        &self,
        req: SeatRequest,
        _: &CallContext,
    ) -> Result<AssignResponse, PluginError> {
        check_slug("license_id", &req.license_id)?;
        check_slug("user_id", &req.user_id)?;
        let store = self.host.store();
        let license_key = user_key(&req.license_id);
        let counter = counter_key(&req.license_id);
        let seat = seat_key(&req.license_id, &req.user_id);
        for _ in 0..MAX_ATTEMPTS {
            let (license, license_bytes) = load_user(&store, &req.license_id)?
                .ok_or_else(|| not_found("license_id", &req.license_id))?;
            let (seats, counter_bytes) = load_counter(&store, &req.license_id)?;
            if store.get(&seat)?.is_some() {
                return Ok(AssignResponse {
                    assigned: false,
                    used: seats.used,
                    max_users: license.max_users,
                });
            }
            if license.max_users != 0 && seats.used >= license.max_users {
                return Err(PluginError::conflict(format!(
                    "{} has no free seat: {} of {} seats used",
                    describe(&license),
                    seats.used,
                    license.max_users
                ))
                .with_details(json!({
                    "license_id": license.id,
                    "used": seats.used,
                    "max_users": license.max_users,
                })));
            }
            let next = SeatCounter {
                used: seats.used.saturating_add(1),
                rev: seats.rev.wrapping_add(1),
            };
            let value = serde_json::to_vec(&json!({ "assigned_at": self.host.now_unix_ms() }))?;
            let batch = store.batch().expect(&license_key, &license_bytes);
            let result = expect_state(batch, &counter, counter_bytes.as_deref())
                .expect_absent(&seat)
                .put(&counter, encode_counter(next)?)
                .put(&seat, &value)
                .put(holder_key(&req.user_id, &req.license_id), &value)
                .commit()?;
            if result == BatchResult::Committed {
                self.host.publish(
                    "license.assigned",
                    &json!({ "license_id": req.license_id, "user_id": req.user_id }),
                )?;
                return Ok(AssignResponse {
                    assigned: true,
                    used: next.used,
                    max_users: license.max_users,
                });
            }
            std::thread::yield_now();
        }
        Err(busy(&format!("user license '{}'", req.license_id)))
    }

    pub(crate) fn revoke(
        &self,
        req: SeatRequest,
        _: &CallContext,
    ) -> Result<RevokeResponse, PluginError> {
        check_slug("license_id", &req.license_id)?;
        check_slug("user_id", &req.user_id)?;
        let revoked = self.revoke_seat(&req.license_id, &req.user_id)?;
        Ok(RevokeResponse { revoked })
    }

    /// Frees `user_id`'s seat of `license_id`; `Ok(false)` when there was none.
    fn revoke_seat(&self, license_id: &str, user_id: &str) -> Result<bool, PluginError> {
        let store = self.host.store();
        let counter = counter_key(license_id);
        let seat = seat_key(license_id, user_id);
        for _ in 0..MAX_ATTEMPTS {
            if load_user(&store, license_id)?.is_none() {
                return Err(not_found("license_id", license_id));
            }
            let (seats, counter_bytes) = load_counter(&store, license_id)?;
            let Some(seat_bytes) = store.get(&seat)? else {
                return Ok(false);
            };
            let next = SeatCounter {
                used: seats.used.saturating_sub(1),
                rev: seats.rev.wrapping_add(1),
            };
            let result = expect_state(store.batch(), &counter, counter_bytes.as_deref())
                .expect(&seat, &seat_bytes)
                .put(&counter, encode_counter(next)?)
                .delete(&seat)
                .delete(holder_key(user_id, license_id))
                .commit()?;
            if result == BatchResult::Committed {
                self.host.publish(
                    "license.revoked",
                    &json!({ "license_id": license_id, "user_id": user_id }),
                )?;
                return Ok(true);
            }
            std::thread::yield_now();
        }
        Err(busy(&format!("user license '{license_id}'")))
    }

    pub(crate) fn seats(
        &self,
        req: SeatsRequest,
        _: &CallContext,
    ) -> Result<SeatsResponse, PluginError> {
        let store = self.host.store();
        let licenses = match &req.license_id {
            Some(id) => {
                check_slug("license_id", id)?;
                let (license, _) =
                    load_user(&store, id)?.ok_or_else(|| not_found("license_id", id))?;
                vec![license]
            }
            None => {
                let mut all = Vec::new();
                for (_, id) in store.scan_prefix(USER_NAME_PREFIX)? {
                    if let Some((license, _)) = load_user(&store, &String::from_utf8_lossy(&id))? {
                        all.push(license);
                    }
                }
                all
            }
        };
        let mut items = Vec::with_capacity(licenses.len());
        for license in licenses {
            let (counter, _) = load_counter(&store, &license.id)?;
            items.push(SeatInfo {
                license_id: license.id,
                name: license.name,
                used: counter.used,
                max_users: license.max_users,
            });
        }
        Ok(SeatsResponse { items })
    }

    pub(crate) fn assignees(
        &self,
        req: AssigneesRequest,
        _: &CallContext,
    ) -> Result<ListResponse<String>, PluginError> {
        check_slug("license_id", &req.license_id)?;
        let page = Page::new(None, req.offset, req.limit)?;
        let store = self.host.store();
        if load_user(&store, &req.license_id)?.is_none() {
            return Err(not_found("license_id", &req.license_id));
        }
        let prefix = seat_prefix(&req.license_id);
        let seats = store.scan_prefix(&prefix)?;
        let total = seats.len() as u64;
        let items = seats
            .iter()
            .skip(page.offset)
            .take(page.limit)
            .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            .collect();
        Ok(ListResponse { items, total })
    }

    pub(crate) fn licenses_of(
        &self,
        req: LicensesOfRequest,
        _: &CallContext,
    ) -> Result<LicensesOfResponse, PluginError> {
        check_slug("user_id", &req.user_id)?;
        let prefix = holder_prefix(&req.user_id);
        let licenses = self
            .host
            .store()
            .scan_prefix(&prefix)?
            .into_iter()
            .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            .collect();
        Ok(LicensesOfResponse { licenses })
    }

    /// Revokes every seat of a deleted user (the `user.deleted` handler).
    /// Keeps going after a failure and reports the first one.
    pub(crate) fn release_seats_of(&self, user_id: &str) -> Result<(), PluginError> {
        if !crate::util::is_slug(user_id) {
            // Such a user can never have been assigned a seat.
            return Ok(());
        }
        let prefix = holder_prefix(user_id);
        let held = self.host.store().scan_prefix(&prefix)?;
        let mut first_error = None;
        for (key, _) in held {
            let license_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            match self.revoke_seat(&license_id, user_id) {
                Ok(_) => {}
                // Deleted concurrently, together with its seats.
                Err(e) if e.is(syshost_plugin_api::codes::NOT_FOUND) => {}
                Err(e) => {
                    self.host.warn(format!(
                        "could not free the seat of deleted user '{user_id}' in license '{license_id}': {e}"
                    ));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn publish_user_updated(&self, view: &UserLicenseView) -> Result<(), PluginError> {
        self.host.publish(
            "license.updated",
            &json!({ "license": view, "kind": "user" }),
        )
    }
}
