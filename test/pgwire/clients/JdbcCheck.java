// The PostgreSQL JDBC driver against Featherman's Postgres listener: prints one JSON-ish line of
// observations per check for test/pgwire/jdbc.test.ts (this program asserts nothing itself).
import java.sql.*;
import java.util.*;

public class JdbcCheck {
  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/default?sslmode=disable";
    Properties p = new Properties();
    p.setProperty("user", "analyst");
    p.setProperty("password", args[1]);
    try (Connection c = DriverManager.getConnection(url, p)) {
      try (PreparedStatement ps = c.prepareStatement("SELECT id, name, balance FROM users WHERE id BETWEEN ? AND ? AND name <> ? ORDER BY id")) {
        ps.setInt(1, 3); ps.setLong(2, 5); ps.setString(3, "x");
        StringBuilder sb = new StringBuilder();
        for (int run = 0; run < 6; run++) { // past prepareThreshold (5): server-side prepared, binary results
          sb.setLength(0);
          try (ResultSet rs = ps.executeQuery()) { while (rs.next()) sb.append(rs.getInt(1)).append(':').append(rs.getString(2)).append(':').append(rs.getBigDecimal(3)).append(';'); }
        }
        System.out.println("prepared=" + sb);
      }
      DatabaseMetaData md = c.getMetaData();
      StringBuilder tables = new StringBuilder();
      try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) { while (rs.next()) tables.append(rs.getString("TABLE_NAME")).append(','); }
      System.out.println("tables=" + tables);
      StringBuilder cols = new StringBuilder();
      try (ResultSet rs = md.getColumns(null, null, "users", "%")) { while (rs.next()) cols.append(rs.getString("COLUMN_NAME")).append(' ').append(rs.getString("TYPE_NAME")).append(','); }
      System.out.println("columns=" + cols);
      // A large result with a fetch size: only inside a transaction does the driver use a portal.
      c.setAutoCommit(false);
      long before = Long.parseLong(args[2]);
      try (Statement st = c.createStatement()) {
        st.setFetchSize(10000);
        long n = 0, sum = 0;
        try (ResultSet rs = st.executeQuery("SELECT range AS i, 'row ' || range AS s FROM range(1000000)")) { while (rs.next()) { n++; sum += rs.getLong(1); } }
        System.out.println("rows=" + n + " sum=" + sum);
      }
      c.commit();
      try (Statement st = c.createStatement()) {
        st.executeQuery("SELECT * FROM read_csv('/etc/passwd')");
      } catch (SQLException e) { System.out.println("refused=" + e.getSQLState()); }
      c.rollback();
    }
  }
}
