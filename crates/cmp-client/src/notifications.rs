//! Notification rules and their deliveries.

use cmp_api::{
    DeliveryListParams, NotificationDelivery, NotificationRule, NotificationRuleCreate,
    NotificationRulePatch, Page,
};
use reqwest::Method;

use crate::{Client, ClientResult, segment};

impl Client {
    pub async fn notification_rules(&self) -> ClientResult<Vec<NotificationRule>> {
        self.get("/api/v1/notifications/rules", &()).await
    }

    /// A rule by id or name.
    pub async fn notification_rule(&self, id: &str) -> ClientResult<NotificationRule> {
        self.get(&format!("/api/v1/notifications/rules/{}", segment(id)), &()).await
    }

    pub async fn create_notification_rule(
        &self,
        rule: &NotificationRuleCreate,
    ) -> ClientResult<NotificationRule> {
        self.send_json(Method::POST, "/api/v1/notifications/rules", rule).await
    }

    pub async fn update_notification_rule(
        &self,
        id: &str,
        patch: &NotificationRulePatch,
    ) -> ClientResult<NotificationRule> {
        let path = format!("/api/v1/notifications/rules/{}", segment(id));
        self.send_json(Method::PATCH, &path, patch).await
    }

    pub async fn delete_notification_rule(&self, id: &str) -> ClientResult<()> {
        let path = format!("/api/v1/notifications/rules/{}", segment(id));
        Self::empty(self.request(Method::DELETE, &path).send().await?).await
    }

    /// Sends a test message through the rule's channel now; the delivery says how it went.
    pub async fn test_notification_rule(&self, id: &str) -> ClientResult<NotificationDelivery> {
        let path = format!("/api/v1/notifications/rules/{}/test", segment(id));
        Self::read(self.request(Method::POST, &path).send().await?).await
    }

    pub async fn notification_deliveries(
        &self,
        params: &DeliveryListParams,
    ) -> ClientResult<Page<NotificationDelivery>> {
        self.get("/api/v1/notifications/deliveries", params).await
    }
}
