//! Accounts with their contacts, and bill groups.

macro_rules! store {
    ($repo:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl super::AccountStore for $repo {
            async fn insert_account(
                &self,
                tenant: &str,
                a: &crate::domain::Account,
                contacts: &[Contact],
                idem: super::Idem<'_>,
                event: &Event,
            ) -> Result<recur_storage::idem::Stored<(crate::domain::Account, Vec<Contact>)>, StorageError> {
                use recur_storage::idem::Stored;
                if let Some(key) = idem.key {
                    let existing = sqlx::query_as::<_, rows::AccountRow>(
                        "SELECT * FROM accounts WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = existing {
                        let hash = row.request_hash.clone();
                        let account = crate::domain::Account::try_from(row)?;
                        let contacts = contacts_of(&self.pool, tenant, &[account.id.as_str()]).await?;
                        return Ok(Stored::existing((account, contacts), hash));
                    }
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO accounts (tenant_id, id, custom_id, account_name, currency, time_zone, \
                     billing_address, tags, notes, metadata, tax_exempt, idempotency_key, request_hash, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(tenant)
                .bind(&a.id)
                .bind(&a.custom_id)
                .bind(&a.account_name)
                .bind(&a.currency)
                .bind(&a.time_zone)
                .bind(to_json(&a.billing_address)?)
                .bind(to_json(&a.tags)?)
                .bind(&a.notes)
                .bind(to_json(&a.metadata)?)
                .bind(a.tax_exempt)
                .bind(idem.key)
                .bind(idem.hash)
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&mut *tx)
                .await?;
                for c in contacts {
                    sqlx::query(
                        "INSERT INTO contacts (tenant_id, id, account_id, name, first_name, last_name, title, email, \
                         phone, address, is_primary, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(tenant)
                    .bind(&c.id)
                    .bind(&a.id)
                    .bind(&c.name)
                    .bind(&c.first_name)
                    .bind(&c.last_name)
                    .bind(&c.title)
                    .bind(&c.email)
                    .bind(&c.phone)
                    .bind(to_json(&c.address)?)
                    .bind(c.primary)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
                acct_write_tags(&mut tx, tenant, &a.id, &a.tags).await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(Stored::created((a.clone(), contacts.to_vec()), idem.hash))
            }

            async fn get_account(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<(crate::domain::Account, Vec<Contact>)>, StorageError> {
                let Some(account) = super::AccountStore::get_account_alone(self, tenant, id).await? else {
                    return Ok(None);
                };
                let contacts = contacts_of(&self.pool, tenant, &[account.id.as_str()]).await?;
                Ok(Some((account, contacts)))
            }

            async fn get_accounts_alone(
                &self,
                tenant: &str,
                ids: &[String],
            ) -> Result<Vec<crate::domain::Account>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM accounts WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND id");
                recur_storage::push_in(&mut qb, ids);
                rows::all(qb.build_query_as::<rows::AccountRow>().fetch_all(&self.pool).await?)
            }

            async fn get_account_alone(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<crate::domain::Account>, StorageError> {
                let row = sqlx::query_as::<_, rows::AccountRow>("SELECT * FROM accounts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(crate::domain::Account::try_from).transpose()
            }

            async fn find_account(
                &self,
                tenant: &str,
                custom_id: Option<&str>,
                email: Option<&str>,
            ) -> Result<Option<String>, StorageError> {
                let id: Option<String> = match (custom_id, email) {
                    (Some(c), _) => {
                        sqlx::query_scalar("SELECT id FROM accounts WHERE tenant_id = $1 AND custom_id = $2")
                            .bind(tenant)
                            .bind(c)
                            .fetch_optional(&self.pool)
                            .await?
                    }
                    (None, Some(e)) => {
                        sqlx::query_scalar(
                            "SELECT account_id FROM contacts WHERE tenant_id = $1 AND lower(email) = lower($2) \
                             ORDER BY created_at LIMIT 1",
                        )
                        .bind(tenant)
                        .bind(e)
                        .fetch_optional(&self.pool)
                        .await?
                    }
                    (None, None) => None,
                };
                Ok(id)
            }

            async fn list_accounts(
                &self,
                tenant: &str,
                after: Option<&recur_storage::page::Cursor>,
                limit: i64,
            ) -> Result<Vec<(crate::domain::Account, Vec<Contact>)>, StorageError> {
                acct_list(&self.pool, tenant, None, after, limit).await
            }

            async fn list_accounts_tagged(
                &self,
                tenant: &str,
                tag: &str,
                after: Option<&recur_storage::page::Cursor>,
                limit: i64,
            ) -> Result<Vec<(crate::domain::Account, Vec<Contact>)>, StorageError> {
                acct_list(&self.pool, tenant, Some(tag), after, limit).await
            }

            async fn insert_bill_group(
                &self,
                tenant: &str,
                bg: &crate::domain::BillGroup,
                idem: super::Idem<'_>,
                event: &Event,
            ) -> Result<recur_storage::idem::Stored<crate::domain::BillGroup>, StorageError> {
                use recur_storage::idem::Stored;
                if let Some(key) = idem.key {
                    let existing = sqlx::query_as::<_, rows::BillGroupRow>(&format!(
                        "SELECT {} FROM bill_groups b WHERE tenant_id = $1 AND idempotency_key = $2",
                        rows::BILL_GROUP_COLUMNS
                    ))
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = existing {
                        let hash = row.request_hash.clone();
                        return Ok(Stored::existing(crate::domain::BillGroup::try_from(row)?, hash));
                    }
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO bill_groups (tenant_id, id, account_id, name, auto_email_invoice, \
                     collect_invoice_balance_automatically, payment_method_id, gateway_customer_id, billing_day, \
                     collection_method, currency, contact_id, idempotency_key, request_hash, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(tenant)
                .bind(&bg.id)
                .bind(&bg.account_id)
                .bind(&bg.name)
                .bind(bg.auto_email_invoice)
                .bind(bg.collect_automatically)
                .bind(&bg.payment_method_id)
                .bind(&bg.gateway_customer_id)
                .bind(i32::try_from(bg.billing_day).unwrap_or(0))
                .bind(bg.collection_method.as_str())
                .bind(&bg.currency)
                .bind(&bg.contact_id)
                .bind(idem.key)
                .bind(idem.hash)
                .bind(bg.created_at)
                .bind(bg.updated_at)
                .execute(&mut *tx)
                .await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(Stored::created(bg.clone(), idem.hash))
            }

            async fn create_context(
                &self,
                tenant: &str,
                key: Option<&str>,
                account_id: &str,
                bill_group_id: &str,
            ) -> Result<super::CreateContext, StorageError> {
                use sqlx::Row;
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!(
                        "SELECT a.*, {}, EXISTS (SELECT 1 FROM subscriptions s \
                         WHERE s.tenant_id = $1 AND s.idempotency_key = $2) AS replayed \
                         FROM (SELECT 1 AS one) o \
                         LEFT JOIN accounts a ON a.tenant_id = $1 AND a.id = $3 \
                         LEFT JOIN bill_groups b ON b.tenant_id = $1 AND b.id = $4",
                        rows::BILL_GROUP_COLUMNS
                    )
                });
                let row = sqlx::query(SQL.as_str())
                    .bind(tenant)
                    .bind(key)
                    .bind(account_id)
                    .bind(bill_group_id)
                    .fetch_one(&self.pool)
                    .await?;
                let account = match row.try_get::<Option<String>, _>("id")? {
                    Some(_) => Some(crate::domain::Account::try_from(
                        <rows::AccountRow as sqlx::FromRow<_>>::from_row(&row)?,
                    )?),
                    None => None,
                };
                let bill_group = match row.try_get::<Option<String>, _>("bg_id")? {
                    Some(_) => Some(crate::domain::BillGroup::try_from(
                        <rows::BillGroupRow as sqlx::FromRow<_>>::from_row(&row)?,
                    )?),
                    None => None,
                };
                Ok(super::CreateContext { replayed: row.try_get("replayed")?, account, bill_group })
            }

            async fn get_bill_groups(
                &self,
                tenant: &str,
                ids: &[String],
            ) -> Result<Vec<crate::domain::BillGroup>, StorageError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM bill_groups b WHERE tenant_id = ",
                    rows::BILL_GROUP_COLUMNS
                ));
                qb.push_bind(tenant).push(" AND id");
                recur_storage::push_in(&mut qb, ids);
                rows::all(qb.build_query_as::<rows::BillGroupRow>().fetch_all(&self.pool).await?)
            }

            async fn get_bill_group(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<crate::domain::BillGroup>, StorageError> {
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!("SELECT {} FROM bill_groups b WHERE tenant_id = $1 AND id = $2", rows::BILL_GROUP_COLUMNS)
                });
                sqlx::query_as::<_, rows::BillGroupRow>(SQL.as_str())
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(crate::domain::BillGroup::try_from)
                    .transpose()
            }

            async fn update_account(
                &self,
                tenant: &str,
                id: &str,
                apply: &(dyn for<'x> Fn(&'x crate::domain::Account) -> Option<(crate::domain::Account, Event)> + Send + Sync),
            ) -> Result<Option<(crate::domain::Account, Vec<Contact>)>, StorageError> {
                let mut tx = acct_begin(&self.pool).await?;
                let q = format!("SELECT * FROM accounts WHERE tenant_id = $1 AND id = $2{}", acct_lock());
                let row =
                    sqlx::query_as::<_, rows::AccountRow>(&q).bind(tenant).bind(id).fetch_optional(&mut *tx).await?;
                let Some(row) = row else { return Ok(None) };
                let current = crate::domain::Account::try_from(row)?;
                let account = match apply(&current) {
                    None => current,
                    Some((a, event)) => {
                        sqlx::query(
                            "UPDATE accounts SET custom_id = $3, account_name = $4, currency = $5, time_zone = $6, \
                             billing_address = $7, tags = $8, notes = $9, metadata = $10, tax_exempt = $11, \
                             updated_at = $12 WHERE tenant_id = $1 AND id = $2",
                        )
                        .bind(tenant)
                        .bind(id)
                        .bind(&a.custom_id)
                        .bind(&a.account_name)
                        .bind(&a.currency)
                        .bind(&a.time_zone)
                        .bind(to_json(&a.billing_address)?)
                        .bind(to_json(&a.tags)?)
                        .bind(&a.notes)
                        .bind(to_json(&a.metadata)?)
                        .bind(a.tax_exempt)
                        .bind(a.updated_at)
                        .execute(&mut *tx)
                        .await?;
                        if a.tags != current.tags {
                            acct_write_tags(&mut tx, tenant, id, &a.tags).await?;
                        }
                        insert_events(&mut tx, tenant, std::slice::from_ref(&event)).await?;
                        a
                    }
                };
                let contacts = acct_contacts(&mut tx, tenant, id).await?;
                tx.commit().await?;
                Ok(Some((account, contacts)))
            }

            async fn insert_contact(
                &self,
                tenant: &str,
                c: &Contact,
                idem: super::Idem<'_>,
                event: &Event,
            ) -> Result<Option<recur_storage::idem::Stored<Contact>>, StorageError> {
                use recur_storage::idem::Stored;
                if let Some(key) = idem.key {
                    let existing = sqlx::query_as::<_, rows::ContactKeyRow>(
                        "SELECT * FROM contacts WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = existing {
                        return Ok(Some(Stored::existing(Contact::try_from(row.contact)?, row.request_hash)));
                    }
                }
                let mut tx = acct_begin(&self.pool).await?;
                if !acct_lock_account(&mut tx, tenant, &c.account_id).await? {
                    return Ok(None);
                }
                if c.primary {
                    acct_unset_primary(&mut tx, tenant, &c.account_id, &c.id, c.created_at).await?;
                }
                sqlx::query(
                    "INSERT INTO contacts (tenant_id, id, account_id, name, first_name, last_name, title, email, \
                     phone, address, is_primary, idempotency_key, request_hash, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(tenant)
                .bind(&c.id)
                .bind(&c.account_id)
                .bind(&c.name)
                .bind(&c.first_name)
                .bind(&c.last_name)
                .bind(&c.title)
                .bind(&c.email)
                .bind(&c.phone)
                .bind(to_json(&c.address)?)
                .bind(c.primary)
                .bind(idem.key)
                .bind(idem.hash)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(Some(Stored::created(c.clone(), idem.hash)))
            }

            async fn get_contact(&self, tenant: &str, id: &str) -> Result<Option<Contact>, StorageError> {
                sqlx::query_as::<_, ContactRow>("SELECT * FROM contacts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Contact::try_from)
                    .transpose()
            }

            async fn update_contact(
                &self,
                tenant: &str,
                id: &str,
                apply: &(dyn for<'x> Fn(&'x Contact) -> Option<(Contact, Event)> + Send + Sync),
            ) -> Result<Option<Contact>, StorageError> {
                // A contact's account never changes: lock it first, so that
                // contacts of one account made primary at once queue there.
                let account_id: Option<String> =
                    sqlx::query_scalar("SELECT account_id FROM contacts WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(account_id) = account_id else { return Ok(None) };
                let mut tx = acct_begin(&self.pool).await?;
                if !acct_lock_account(&mut tx, tenant, &account_id).await? {
                    return Ok(None);
                }
                let q = format!("SELECT * FROM contacts WHERE tenant_id = $1 AND id = $2{}", acct_lock());
                let row = sqlx::query_as::<_, ContactRow>(&q).bind(tenant).bind(id).fetch_optional(&mut *tx).await?;
                let Some(row) = row else { return Ok(None) };
                let current = Contact::try_from(row)?;
                let Some((c, event)) = apply(&current) else { return Ok(Some(current)) };
                if c.primary && !current.primary {
                    acct_unset_primary(&mut tx, tenant, &current.account_id, id, c.updated_at).await?;
                }
                sqlx::query(
                    "UPDATE contacts SET name = $3, first_name = $4, last_name = $5, title = $6, email = $7, \
                     phone = $8, address = $9, is_primary = $10, updated_at = $11 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(&c.name)
                .bind(&c.first_name)
                .bind(&c.last_name)
                .bind(&c.title)
                .bind(&c.email)
                .bind(&c.phone)
                .bind(to_json(&c.address)?)
                .bind(c.primary)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(&event)).await?;
                tx.commit().await?;
                Ok(Some(c))
            }

            async fn update_bill_group(
                &self,
                tenant: &str,
                id: &str,
                apply: &(dyn for<'x> Fn(&'x crate::domain::BillGroup) -> Option<(crate::domain::BillGroup, Event)>
                      + Send
                      + Sync),
            ) -> Result<Option<crate::domain::BillGroup>, StorageError> {
                let mut tx = acct_begin(&self.pool).await?;
                let q = format!(
                    "SELECT {} FROM bill_groups b WHERE tenant_id = $1 AND id = $2{}",
                    rows::BILL_GROUP_COLUMNS,
                    acct_lock()
                );
                let row =
                    sqlx::query_as::<_, rows::BillGroupRow>(&q).bind(tenant).bind(id).fetch_optional(&mut *tx).await?;
                let Some(row) = row else { return Ok(None) };
                let current = crate::domain::BillGroup::try_from(row)?;
                let Some((bg, event)) = apply(&current) else { return Ok(Some(current)) };
                sqlx::query(
                    "UPDATE bill_groups SET name = $3, auto_email_invoice = $4, \
                     collect_invoice_balance_automatically = $5, payment_method_id = $6, gateway_customer_id = $7, \
                     billing_day = $8, collection_method = $9, currency = $10, contact_id = $11, updated_at = $12 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(id)
                .bind(&bg.name)
                .bind(bg.auto_email_invoice)
                .bind(bg.collect_automatically)
                .bind(&bg.payment_method_id)
                .bind(&bg.gateway_customer_id)
                .bind(i32::try_from(bg.billing_day).unwrap_or(0))
                .bind(bg.collection_method.as_str())
                .bind(&bg.currency)
                .bind(&bg.contact_id)
                .bind(bg.updated_at)
                .execute(&mut *tx)
                .await?;
                insert_events(&mut tx, tenant, std::slice::from_ref(&event)).await?;
                tx.commit().await?;
                Ok(Some(bg))
            }

            async fn list_bill_groups(
                &self,
                tenant: &str,
                account_id: &str,
                after: Option<&recur_storage::page::Cursor>,
                limit: i64,
            ) -> Result<Vec<crate::domain::BillGroup>, StorageError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM bill_groups b WHERE tenant_id = ",
                    rows::BILL_GROUP_COLUMNS
                ));
                qb.push_bind(tenant).push(" AND account_id = ").push_bind(account_id);
                if let Some(c) = after {
                    qb.push(" AND (created_at, id) > (")
                        .push_bind(c.as_time())
                        .push(", ")
                        .push_bind(c.id.as_str())
                        .push(")");
                }
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
                rows::all(qb.build_query_as::<rows::BillGroupRow>().fetch_all(&self.pool).await?)
            }
        }

        async fn acct_begin(pool: &sqlx::Pool<$db>) -> Result<Tx<'static>, StorageError> {
            Ok(recur_storage::begin_locking(pool).await?)
        }

        fn acct_lock() -> &'static str {
            recur_storage::for_update::<$db>()
        }

        /// Locks account `id`; false when there is none.
        async fn acct_lock_account(tx: &mut Tx<'_>, tenant: &str, id: &str) -> Result<bool, StorageError> {
            let q = format!("SELECT id FROM accounts WHERE tenant_id = $1 AND id = $2{}", acct_lock());
            let found: Option<String> = sqlx::query_scalar(&q).bind(tenant).bind(id).fetch_optional(&mut **tx).await?;
            Ok(found.is_some())
        }

        /// Makes every contact of `account_id` but `keep` not primary.
        async fn acct_unset_primary(
            tx: &mut Tx<'_>,
            tenant: &str,
            account_id: &str,
            keep: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), StorageError> {
            sqlx::query(
                "UPDATE contacts SET is_primary = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND account_id = $2 AND id <> $3 AND is_primary = $6",
            )
            .bind(tenant)
            .bind(account_id)
            .bind(keep)
            .bind(false)
            .bind(at)
            .bind(true)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Replaces the tag rows of account `id` (ListAccounts' tag filter).
        async fn acct_write_tags(tx: &mut Tx<'_>, tenant: &str, id: &str, tags: &[String]) -> Result<(), StorageError> {
            sqlx::query("DELETE FROM account_tags WHERE tenant_id = $1 AND account_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            let unique: std::collections::BTreeSet<&str> = tags.iter().map(String::as_str).collect();
            for tag in unique {
                sqlx::query("INSERT INTO account_tags (tenant_id, account_id, tag) VALUES ($1, $2, $3)")
                    .bind(tenant)
                    .bind(id)
                    .bind(tag)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// The contacts of account `id`, oldest first, read in `tx`.
        async fn acct_contacts(tx: &mut Tx<'_>, tenant: &str, id: &str) -> Result<Vec<Contact>, StorageError> {
            let rows = sqlx::query_as::<_, ContactRow>(
                "SELECT * FROM contacts WHERE tenant_id = $1 AND account_id = $2 ORDER BY created_at, id",
            )
            .bind(tenant)
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
            rows::all(rows)
        }

        /// Accounts (with `tag`, when given) after `after`, oldest first.
        async fn acct_list(
            pool: &sqlx::Pool<$db>,
            tenant: &str,
            tag: Option<&str>,
            after: Option<&recur_storage::page::Cursor>,
            limit: i64,
        ) -> Result<Vec<(crate::domain::Account, Vec<Contact>)>, StorageError> {
            let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM accounts WHERE tenant_id = ");
            qb.push_bind(tenant);
            if let Some(tag) = tag {
                qb.push(
                    " AND EXISTS (SELECT 1 FROM account_tags t WHERE t.tenant_id = accounts.tenant_id \
                     AND t.account_id = accounts.id AND t.tag = ",
                )
                .push_bind(tag)
                .push(")");
            }
            if let Some(c) = after {
                qb.push(" AND (created_at, id) > (").push_bind(c.as_time()).push(", ").push_bind(c.id.as_str()).push(")");
            }
            qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
            let accounts: Vec<crate::domain::Account> =
                rows::all(qb.build_query_as::<rows::AccountRow>().fetch_all(pool).await?)?;
            let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
            let contacts = contacts_of(pool, tenant, &ids).await?;
            Ok(accounts
                .into_iter()
                .map(|a| {
                    let mine = contacts.iter().filter(|c| c.account_id == a.id).cloned().collect();
                    (a, mine)
                })
                .collect())
        }
    };
}

pub(crate) use store;
