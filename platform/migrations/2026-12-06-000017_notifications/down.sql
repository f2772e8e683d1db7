DROP TABLE deliveries;
DROP TABLE webhooks;
DROP TABLE notification_choices;
DROP TABLE notifications;
