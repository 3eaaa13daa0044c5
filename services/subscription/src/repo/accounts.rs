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
                insert_events(&mut tx, tenant, std::slice::from_ref(event)).await?;
                tx.commit().await?;
                Ok(Stored::created((a.clone(), contacts.to_vec()), idem.hash))
            }

            async fn get_account(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<(crate::domain::Account, Vec<Contact>)>, StorageError> {
                let row = sqlx::query_as::<_, rows::AccountRow>("SELECT * FROM accounts WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let account = crate::domain::Account::try_from(row)?;
                let contacts = contacts_of(&self.pool, tenant, &[account.id.as_str()]).await?;
                Ok(Some((account, contacts)))
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
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT * FROM accounts WHERE tenant_id = ");
                qb.push_bind(tenant);
                if let Some(c) = after {
                    qb.push(" AND (created_at, id) > (")
                        .push_bind(c.as_time())
                        .push(", ")
                        .push_bind(c.id.as_str())
                        .push(")");
                }
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
                let accounts: Vec<crate::domain::Account> =
                    rows::all(qb.build_query_as::<rows::AccountRow>().fetch_all(&self.pool).await?)?;
                let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
                let contacts = contacts_of(&self.pool, tenant, &ids).await?;
                Ok(accounts
                    .into_iter()
                    .map(|a| {
                        let mine = contacts.iter().filter(|c| c.account_id == a.id).cloned().collect();
                        (a, mine)
                    })
                    .collect())
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
                    let existing = sqlx::query_as::<_, rows::BillGroupRow>(
                        "SELECT * FROM bill_groups WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
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

            async fn get_bill_group(
                &self,
                tenant: &str,
                id: &str,
            ) -> Result<Option<crate::domain::BillGroup>, StorageError> {
                sqlx::query_as::<_, rows::BillGroupRow>("SELECT * FROM bill_groups WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(crate::domain::BillGroup::try_from)
                    .transpose()
            }
        }
    };
}

pub(crate) use store;
