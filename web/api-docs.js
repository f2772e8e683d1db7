// The REST API's reference page: Swagger UI over the document the server generates. A token
// is entered with "Authorize" and kept in this page only (never stored).
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#reference",
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
