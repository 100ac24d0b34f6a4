//! Delivery outcomes: what the carrier said about a sent message feeds its
//! sender's health.

use super::Engine;
use crate::error::Error;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::selection::health::DeliveryOutcome;

impl Engine {
    /// Records a delivery outcome of `sender`. `Ok(false)` if no profile has
    /// the number (the outcome is dropped).
    ///
    /// ```
    /// # use numpool::{DeliveryOutcome, Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// let sender = PhoneNumber::parse_e164("+13125550001")?;
    /// let delivered = DeliveryOutcome { delivered: true, spam: false };
    /// assert!(!engine.report_outcome(sender, delivered).await?);
    /// engine.assign_number(sender, Some(profile)).await?;
    /// assert!(engine.report_outcome(sender, delivered).await?);
    /// assert_eq!(engine.number(sender).await?.health.delivered, 1);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn report_outcome(
        &self,
        sender: PhoneNumber,
        outcome: DeliveryOutcome,
    ) -> Result<bool, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let Some(profile) = self.owner(sender) else {
            return Ok(false);
        };
        let Some(actor) = self.inner.dispatcher.actor(profile) else {
            return Ok(false);
        };
        let now = self.inner.now_secs();
        let (counted, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                if p.record_outcome(sender, outcome, now, &env.health) {
                    let record = Record::Outcome {
                        profile,
                        sender,
                        outcome,
                        at: now,
                    };
                    (true, env.journal(&[record]))
                } else {
                    (false, None)
                }
            })
            .await?;
        settle(receipt).await?;
        Ok(counted)
    }
}
